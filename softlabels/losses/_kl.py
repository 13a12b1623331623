"""KL divergence between a target and the student's tempered distribution, from logs."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["tempered_kl"]


def tempered_kl(log_target: torch.Tensor, student_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """``tau^2 * KL(q || softmax(z_s / tau))``, batchmean, with ``log q`` given.

    Computed from log-probabilities only (``log_softmax``), never ``log(softmax)``.
    """
    log_p = F.log_softmax(student_logits.float() / tau, dim=-1)
    return tau * tau * F.kl_div(log_p, log_target.float(), reduction="batchmean", log_target=True)
