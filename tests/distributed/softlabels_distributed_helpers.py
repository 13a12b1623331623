"""Helpers of the torchrun tests (imported by name: this folder has no ``__init__.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from softlabels.teachers import DumpConfig, dump, parse_teacher

DATASET = "mnist1d-lt:imb=10,n_max=40,n_test=6"  # 159 training rows: 10 chunks of 16
CHUNK = 16
BATCH = 8
TEACHERS = ("a=cnn1d", "b=py:softlabels_distributed_nets:crash")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LOCK = ".softlabels.lock"
TORCHRUN_TIMEOUT = 240  # seconds; a hang fails the test instead of blocking the suite


def dump_args(out: Path | str) -> list[str]:
    args = ["dump", "--dataset", DATASET, "--out", str(out), "--views", "2"]
    for t in TEACHERS:
        args += ["--teacher", t]
    return [*args, "--chunk-size", str(CHUNK), "--batch-size", str(BATCH), "--device", "cpu"]


@contextmanager
def one_thread() -> Iterator[None]:
    """Run like a torchrun worker (OMP_NUM_THREADS=1): CPU kernels' bits depend on threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def dump_in_process(out: Path | str) -> Any:
    cfg = DumpConfig(
        dataset=DATASET,
        teachers=tuple(parse_teacher(t) for t in TEACHERS),
        views=2,
        chunk_size=CHUNK,
        batch_size=BATCH,
    )
    with one_thread():
        return dump(cfg, str(out), device="cpu")


def torchrun_command(
    *args: str,
    nproc: int = 2,
    entry: str = "module",
    env: dict[str, str] | None = None,
    launcher: tuple[str, ...] = (),
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of :func:`torchrun`."""
    target = ["-m", "softlabels"] if entry == "module" else [_script()]
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={nproc}",
        *launcher,
        *target,
        *args,
    ]
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(HERE), full_env.get("PYTHONPATH", "")) if p
    )
    full_env["SOFTLABELS_DIST_TIMEOUT"] = "3"  # minutes: a lost peer ends the run, not the suite
    full_env.update(env or {})
    return cmd, full_env


def torchrun(
    *args: str,
    nproc: int = 2,
    entry: str = "module",
    env: dict[str, str] | None = None,
    launcher: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc_per_node=N [LAUNCHER] -m softlabels ARGS`` (or the
    script); ``launcher``: more torchrun options (``--max-restarts``)."""
    cmd, full_env = torchrun_command(*args, nproc=nproc, entry=entry, env=env, launcher=launcher)
    return subprocess.run(
        cmd,
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=TORCHRUN_TIMEOUT,
        check=False,
    )


def worker_pid(launcher_pid: int, rank: int, attempt: int = 0) -> int | None:
    """The pid of torchrun's worker of ``rank`` in restart ``attempt`` (Linux /proc), if running."""
    try:
        children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()
    except OSError:
        return None
    for child in children:
        try:
            raw = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        env = dict(kv.decode(errors="replace").split("=", 1) for kv in raw if b"=" in kv)
        if env.get("RANK") == str(rank) and env.get("TORCHELASTIC_RESTART_COUNT") == str(attempt):
            return int(child)
    return None


def _script() -> str:
    """The ``softlabels`` console script next to this interpreter."""
    path = Path(sys.executable).parent / "softlabels"
    if not path.exists():
        raise FileNotFoundError(f"no softlabels script at {path} (pip install -e .)")
    return str(path)


def cache_files(root: Path) -> dict[str, bytes]:
    """Every file of a cache folder by relative path, the lock file excluded."""
    out: dict[str, bytes] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if rel != LOCK:
                out[rel] = path.read_bytes()
    return out
