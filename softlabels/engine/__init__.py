"""The training engine: samplers, schedules, batches, the loop (shared by train and distill)."""
