"""Process groups for ``torchrun``: join from its environment, rank and world, barrier, gather.

Under ``torchrun`` (``WORLD_SIZE`` > 1 with ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` set) :func:`setup` joins the default process group with PyTorch's own
``env://`` rendezvous: gloo on the CPU, gloo + NCCL (``cpu:gloo,cuda:nccl``) with CUDA,
each rank on ``cuda:LOCAL_RANK``; under ``torchrun --max-restarts`` each attempt of the group
has its own keys in the store (see :func:`_attempt_store`). Without those variables nothing is started and every
helper answers as for one process (rank 0 of 1), so single-process runs are unchanged.

The helpers that the dump uses (:func:`barrier`, :func:`broadcast_json`,
:func:`all_gather_json`) wait by polling an asynchronous gloo operation, so a rank blocked
in one still runs Python signal handlers: when ``torchrun`` stops the survivors of a failed
rank (SIGTERM), they unwind (``KeyboardInterrupt``), finish the commit in flight and release
the cache lock. Every operation also ends with an error after the process-group timeout
(``SOFTLABELS_DIST_TIMEOUT`` minutes, default 30), so no rank waits forever.
"""

from __future__ import annotations

import atexit
import datetime
import io
import json
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import torch

from softlabels.errors import PeerError, UsageError

__all__ = [
    "Context",
    "PeerError",
    "all_gather_json",
    "barrier",
    "broadcast_json",
    "broadcast_state",
    "is_main",
    "launched",
    "rank",
    "setup",
    "world_size",
]

ENV_TIMEOUT = "SOFTLABELS_DIST_TIMEOUT"
DEFAULT_TIMEOUT_MIN = 30.0
_POLL_SECONDS = 0.02
_ENV = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
_state: dict[str, Any] = {"owned": False}


@dataclass(frozen=True)
class Context:
    """Where this process stands: its rank, the world size and its training device."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    backend: str | None  # None: a single process, no process group

    @property
    def distributed(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise UsageError(f"Expected an integer in ${name}, got {value!r}") from None


def launched() -> bool:
    """Whether this process was started by torchrun (or another ``env://`` launcher) with
    more than one process."""
    return all(os.environ.get(k) for k in _ENV) and _env_int("WORLD_SIZE", 1) > 1


def _initialized() -> bool:
    import torch.distributed as dist

    return bool(dist.is_available() and dist.is_initialized())


def rank() -> int:
    """This process's rank (0 without a process group; read from the environment before
    :func:`setup`)."""
    if _initialized():
        import torch.distributed as dist

        return int(dist.get_rank())
    return _env_int("RANK", 0) if launched() else 0


def world_size() -> int:
    if _initialized():
        import torch.distributed as dist

        return int(dist.get_world_size())
    return _env_int("WORLD_SIZE", 1) if launched() else 1


def is_main() -> bool:
    """Rank 0 (or a single process): the rank that prints, evaluates and writes reports."""
    return rank() == 0


def timeout() -> datetime.timedelta:
    value = os.environ.get(ENV_TIMEOUT, "")
    try:
        minutes = float(value) if value else DEFAULT_TIMEOUT_MIN
    except ValueError:
        raise UsageError(f"Expected minutes in ${ENV_TIMEOUT}, got {value!r}") from None
    if minutes <= 0:
        raise UsageError(f"Expected ${ENV_TIMEOUT} > 0 minutes, got {value!r}")
    return datetime.timedelta(minutes=minutes)


def check_shared_url(url: str) -> None:
    """Under torchrun, refuse a cache that only this process can see (``memory://``)."""
    if launched() and str(url).startswith("memory://"):
        raise UsageError(
            f"{url} lives in the memory of one process; under torchrun give a cache folder "
            "that every rank sees or an object-store URL (s3://, gs://)"
        )


def _device(device: str, local_rank: int, distributed: bool) -> torch.device:
    from softlabels.device import resolve_device

    dev = resolve_device(device)
    # One GPU per rank: "auto" and "cuda" mean this rank's GPU; "cuda:N" is taken as given.
    if distributed and dev.type == "cuda" and device in ("auto", "cuda"):
        count = torch.cuda.device_count()
        if local_rank >= count:
            raise UsageError(
                f"local rank {local_rank} has no GPU of its own ({count} visible); start at most "
                f"{count} processes per node (--nproc_per_node) or use --device cpu"
            )
        dev = torch.device("cuda", local_rank)
    return dev


def setup(device: str = "auto") -> Context:
    """Resolve the device and, under torchrun, join the default process group (once).

    A process group that the caller has already started is used as it is.
    """
    import torch.distributed as dist

    if _initialized():
        local = _env_int("LOCAL_RANK", 0)
        world = int(dist.get_world_size())
        return Context(
            int(dist.get_rank()),
            world,
            local,
            _device(device, local, world > 1),
            str(dist.get_backend()),
        )
    if not launched():
        return Context(0, 1, 0, _device(device, 0, False), None)
    if not dist.is_available():
        raise UsageError("this PyTorch build has no torch.distributed; run without torchrun")
    local = _env_int("LOCAL_RANK", 0)
    dev = _device(device, local, True)
    backend = "gloo"
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        backend = "cpu:gloo,cuda:nccl"  # gloo for small CPU objects, NCCL for gradients
    rank_, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    dist.init_process_group(
        backend=backend, store=_attempt_store(rank_, world), rank=rank_, world_size=world,
        timeout=timeout(),
    )  # fmt: skip
    _state["owned"] = True
    atexit.register(_shutdown)
    _install_sigterm()
    return Context(int(dist.get_rank()), int(dist.get_world_size()), local, dev, backend)


def _attempt_store(rank: int, world: int) -> Any:
    """The ``env://`` store, its keys prefixed by torchrun's restart count.

    Under ``torchrun --max-restarts`` every attempt of the group reaches the same store (the
    agent's), which still holds the previous attempt's keys: gloo's peers would read the
    address of a dead process and fail to connect ("Connection refused"). Each attempt gets
    its own key space instead, so a restarted group meets only its own members.
    """
    import torch.distributed as dist

    store, _, _ = next(dist.rendezvous("env://", rank, world, timeout=timeout()))
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    return dist.PrefixStore(f"softlabels/attempt-{attempt}", store)


def _shutdown() -> None:
    import torch.distributed as dist

    # From here on the command is over: a late SIGTERM just ends the process.
    if signal.getsignal(signal.SIGTERM) is _on_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _state.get("owned") and dist.is_initialized():
        dist.destroy_process_group()
    _state["owned"] = False


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _install_sigterm() -> None:
    """SIGTERM (how torchrun stops the other ranks when one fails) unwinds like Ctrl-C:
    ``finally`` blocks run, so a commit in flight completes and rank 0 releases the lock."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
        signal.signal(signal.SIGTERM, _on_sigterm)


# --------------------------------------------------------------------------- collectives


def _wait(work: Any) -> None:
    """Wait for an asynchronous operation, returning to Python between polls (signals)."""
    while not work.is_completed():
        time.sleep(_POLL_SECONDS)
    try:
        work.wait()  # raises when the operation failed (a peer died, the timeout passed)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        first = re.sub(r"\[[^\]]*\]\s*", "", first).split(". ")[0][:160]  # gloo's "[pair.cc:561]"
        raise PeerError(
            f"rank {rank()}: another process of this job failed or stopped ({first}); see its "
            "own error; work committed so far is kept, rerun the same command to resume"
        ) from None


def barrier() -> None:
    """Every rank reaches this point before any goes on (no-op for one process)."""
    if world_size() <= 1:
        return
    import torch.distributed as dist

    _wait(dist.all_reduce(torch.zeros(1), async_op=True))


def _tensor(data: bytes) -> torch.Tensor:
    if not data:
        return torch.empty(0, dtype=torch.uint8)
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def _broadcast_bytes(data: bytes | None, src: int = 0) -> bytes:
    import torch.distributed as dist

    size = torch.tensor([len(data) if data is not None else 0], dtype=torch.int64)
    _wait(dist.broadcast(size, src=src, async_op=True))
    if rank() == src:
        assert data is not None
        buf = _tensor(data)
    else:
        buf = torch.empty(int(size.item()), dtype=torch.uint8)
    if buf.numel():
        _wait(dist.broadcast(buf, src=src, async_op=True))
    return buf.numpy().tobytes()


def _plain(obj: Any) -> Any:
    """NumPy scalars and arrays as JSON (results carry a few)."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"Expected JSON-serialisable data, got {type(obj).__name__}")


def broadcast_json(value: Any, src: int = 0) -> Any:
    """``value`` of rank ``src`` (JSON-serialisable) on every rank."""
    if world_size() <= 1:
        return value
    data = json.dumps(value, default=_plain).encode() if rank() == src else None
    return json.loads(_broadcast_bytes(data, src))


def broadcast_state(value: Any, src: int = 0) -> Any:
    """A checkpoint-like value (dicts, lists, tensors) of rank ``src`` on every rank.

    Serialised with ``torch.save`` and read back with ``weights_only=True``: no pickle of
    arbitrary objects crosses the wire.
    """
    if world_size() <= 1:
        return value
    data = None
    if rank() == src:
        buf = io.BytesIO()
        torch.save(value, buf)
        data = buf.getvalue()
    raw = _broadcast_bytes(data, src)
    if rank() == src:
        return value
    return torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)


def all_gather_json(value: Any) -> list[Any]:
    """``[value of rank 0, value of rank 1, ...]`` on every rank (JSON-serialisable values)."""
    world = world_size()
    if world <= 1:
        return [value]
    import torch.distributed as dist

    data = json.dumps(value, default=_plain).encode()
    sizes = torch.zeros(world, dtype=torch.int64)
    sizes[rank()] = len(data)
    _wait(dist.all_reduce(sizes, async_op=True))
    width = int(sizes.max().item())
    mine = torch.zeros(width, dtype=torch.uint8)
    mine[: len(data)] = _tensor(data)
    parts = [torch.empty(width, dtype=torch.uint8) for _ in range(world)]
    _wait(dist.all_gather(parts, mine, async_op=True))
    return [
        json.loads(p[: int(n)].numpy().tobytes())
        for p, n in zip(parts, sizes.tolist(), strict=True)
    ]
