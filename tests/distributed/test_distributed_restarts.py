"""``torchrun --max-restarts 1``: a rank SIGKILLed in the middle of a dump or a distill makes
torchrun restart the group, and the job finishes on its own: the dump with the bytes of an
uninterrupted one (the killed rank 0 held the cache lock: it died with it), the distill
resumed from its last epoch with the weights of an uninterrupted run."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import torch
from softlabels_distributed_helpers import (
    DATASET,
    LOCK,
    ROOT,
    TORCHRUN_TIMEOUT,
    cache_files,
    dump_args,
    one_thread,
    torchrun,
    torchrun_command,
    worker_pid,
)

from softlabels import open_cache
from softlabels.students import distill, load_plan

pytestmark = pytest.mark.slow  # torchrun, two workers, one restart (~20 s each on 2 cores)

RESTART = ("--max-restarts", "1")


def test_dump_finishes_after_its_lock_holder_is_killed(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "restarted.slc"
    # Rank 0 (the lock holder) SIGKILLs itself at its 13th teacher call, once two chunks
    # are committed, in the first attempt only; torchrun stops rank 1 and starts both again.
    proc = torchrun(
        *dump_args(out), "--json", launcher=RESTART,
        env={"SOFTLABELS_TEST_CRASH_RANK": "0", "SOFTLABELS_TEST_CRASH_AFTER": "13",
             "SOFTLABELS_TEST_CRASH_ATTEMPT": "0", "SOFTLABELS_TEST_CRASH_COMMITS": "2",
             "SOFTLABELS_TEST_CRASH_CACHE": str(out)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "exitcode: -9" in proc.stderr and "local_rank: 0" in proc.stderr, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "resumed", result  # the restarted group took the dead lock
    assert 0 < result["chunks_written"] < result["chunks_total"] == 10, result
    assert not (out / LOCK).exists()
    assert cache_files(out) == cache_files(reference)
    assert open_cache(str(out)).verify() == []


PLAN = """
[defaults]
epochs = 12
batch_size = 16
data_seed = 0
lr = 0.05

[[student]]
name = "kd"
model = "mlp"
method = "kd"
teacher = "a"
seed = 1
"""


def _state(path: Path) -> dict | None:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError):
        return None


def test_distill_resumes_from_its_last_epoch_after_a_rank_is_killed(
    reference: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN)
    run = tmp_path / "restarted"
    args = ("distill", str(reference), "--dataset", DATASET, "--out", str(run), "--plan",
            str(plan), "--device", "cpu", "--no-plots", "--eval-every", "100", "--json")  # fmt: skip
    cmd, env = torchrun_command(*args, launcher=RESTART)
    state_path = run / "kd" / "state.pt"
    with subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            deadline = time.monotonic() + TORCHRUN_TIMEOUT
            seen = None
            while seen is None or seen["epochs_done"] < 2:  # rank 0 saves after each epoch
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "no checkpoint"
                time.sleep(0.01)
                seen = _state(state_path) if state_path.exists() else None
            victim = worker_pid(proc.pid, rank=1, attempt=0)
            assert victim is not None, "rank 1 of the first attempt not found"
            subprocess.run(["kill", "-9", str(victim)], check=True)
            stdout, stderr = proc.communicate(timeout=TORCHRUN_TIMEOUT)
        finally:
            proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    assert "exitcode: -9" in stderr and "local_rank: 1" in stderr, stderr[-3000:]
    result = json.loads(stdout)
    assert [s["status"] for s in result["students"]] == ["ok"]
    final = _state(state_path)
    assert final is not None and final["epochs_done"] == 12
    # Resumed, not redone: the epochs before the kill are the very records then saved
    # (their wall-clock seconds included).
    before = json.loads(seen["history"])
    assert json.loads(final["history"])[: len(before)] == before

    with one_thread():
        distill(str(reference), DATASET, load_plan(str(plan)), tmp_path / "one", device="cpu",
                plots=False, evaluate_teachers=False)  # fmt: skip
    got = torch.load(run / "kd" / "model.pt", weights_only=True)["state_dict"]
    want = torch.load(tmp_path / "one" / "kd" / "model.pt", weights_only=True)["state_dict"]
    # What one process trains, up to the rounding of the global batch's gradient (as in
    # test_distributed_distill): no epoch lost or run twice.
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
