"""Virtual-example distributions of cached teachers and DiVE's rule of thumb (METHODS §5).

``V_c(T, p) = sum_i q_{i,c}`` with ``q_i = normalize(softmax(z_i / T) ** p)``, the teacher
probabilities of sample i averaged over its views. Because
``normalize(softmax(z / T) ** p) = softmax(z p / T)``, V depends on the grid point only
through the effective temperature ``T/p``, and each distinct one is computed once.

One streaming pass over the cache gives V for the whole grid: every chunk of every teacher
is read once (checksum verified), turned into float32 in small row blocks that stay in the
CPU cache, and reduced to per-class sums. Within a block the grid points share the work
(:func:`_reduce_rows`): one max subtraction for every T/p; one exponential per chain of
T/p that halve each other (``exp(2 s d) = exp(s d) ** 2``: 10 exponentials and 19 squares
for the default grid's 29 T/p); and each T/p's column sums of ``exp(s d) / S`` as one
mat-vec with the weights ``1 / S``, so no normalised ``[rows, C]`` array is built per grid
point. Memory is bounded by the chunk size (at most three chunks alive: one in use, one
queued, one being read; plus one small block per worker), never by N. Ensembles average
the teachers' probabilities per sample and view; as V is a sum over samples, that is also
the mean of the teachers' V.

A sparse (top-k) teacher's V is that of the distributions its rule rebuilds, and the
result says so (:attr:`VirtualExamples.rebuilt`): each chunk's dense view is rebuilt
(stores/topk.py: its rest logits differ class by class, by the rest profile) and reduced as
dense logits are, one chunk at a time.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from softlabels.errors import UsageError
from softlabels.metrics import ABSOLUTE_GROUPS, THIRDS, group_definition, shot_groups, thirds_groups
from softlabels.nonfinite import nonfinite_error

if TYPE_CHECKING:
    import torch

    from softlabels.stores.reader import Cache

__all__ = [
    "DEFAULT_POWERS",
    "DEFAULT_TAUS",
    "TARGET_RATIO",
    "Choice",
    "GridPoint",
    "VirtualExamples",
    "check_writable",
    "choose",
    "flatness",
    "parse_powers",
    "parse_taus",
    "store_choice",
    "virtual_examples",
]

DEFAULT_TAUS: tuple[float, ...] = tuple(1.0 + 0.5 * i for i in range(19))  # 1, 1.5, ..., 10
DEFAULT_POWERS: tuple[float, ...] = (1.0, 0.5)
TARGET_RATIO = 1.0  # the rule wants mean V(tail) / mean V(head) >= this
GROUP_CHOICES = ("auto", "absolute", "thirds")

# float32 elements of one working block per worker: its two buffers (d = z - max z and the
# exponentials) are ~1 MiB together and stay in L2, so the passes of each temperature (exp or
# square, row sums, weighted column sums) run from cache instead of from DRAM. (Measured at
# C = 8,142: blocks of 16 rows ran ~15 % faster than 32.)
_BLOCK_ELEMENTS = 1 << 17
# CPU workers that split each chunk's rows (each with one torch thread); None: as many as
# torch has threads. 1 gives one worker using torch's own intra-op threads instead.
_CPU_WORKERS: int | None = None
_TIE = 1e-12  # relative tolerance under which two ratios / entropies count as tied

Progress = Callable[[int, int], None]
_T = TypeVar("_T")


# --------------------------------------------------------------------------- the grid


def _fmt(x: float) -> str:
    return f"{x:g}"


def _check_values(values: Sequence[float], what: str, *, upper: float | None = None) -> None:
    if not values:
        raise UsageError(f"Expected at least one value for --{what}, got none")
    for v in values:
        if not math.isfinite(v) or v <= 0 or (upper is not None and v > upper):
            bound = f"0 < value <= {_fmt(upper)}" if upper is not None else "values > 0"
            raise UsageError(f"Expected --{what} {bound}, got {_fmt(v)}")


def parse_taus(text: str) -> tuple[float, ...]:
    """``START:STOP:STEP`` (STOP included: ``1:10:0.5`` gives 19 values) or ``1,2,3.5``."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if not all(math.isfinite(p) for p in parts):
                raise ValueError
            if step <= 0 or stop < start:
                raise UsageError(
                    f"Expected --taus START:STOP:STEP with STEP > 0 and START <= STOP, got {text!r}"
                )
            count = math.floor((stop - start) / step + 1e-9) + 1
            values = [round(start + i * step, 10) for i in range(count)]
        else:
            values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UsageError(
            f"Expected --taus START:STOP:STEP or a comma list of numbers, got {text!r}"
        ) from None
    _check_values(values, "taus")
    return tuple(sorted(set(values)))


def parse_powers(text: str) -> tuple[float, ...]:
    """A comma list of powers in (0, 1], e.g. ``1,0.5``."""
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise UsageError(f"Expected --powers as a comma list of numbers, got {text!r}") from None
    _check_values(values, "powers", upper=1.0)
    return tuple(sorted(set(values), reverse=True))


def _grid(taus: Iterable[float], powers: Iterable[float]) -> list[tuple[float, float, float]]:
    """(T, p, T/p) for every grid point, T ascending then p descending."""
    taus_, powers_ = [float(t) for t in taus], [float(p) for p in powers]
    _check_values(taus_, "taus")
    _check_values(powers_, "powers", upper=1.0)
    return [
        (t, p, round(t / p, 9))
        for t in sorted(set(taus_))
        for p in sorted(set(powers_), reverse=True)
    ]


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Choice:
    """The rule's pick, reported as a student temperature ``tau`` and a teacher ``power``."""

    tau: float
    power: float
    tau_eff: float
    ratio_tail_head: float
    reached: bool  # False: no grid point reached the target, the flattest one was taken
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "tau": self.tau,
            "power": self.power,
            "tau_eff": self.tau_eff,
            "ratio_tail_head": _json_float(self.ratio_tail_head),
            "reached": self.reached,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class GridPoint:
    """V and its flatness figures at one (T, p)."""

    tau: float
    power: float
    tau_eff: float
    ratio_tail_head: float
    entropy: float  # H(V / N) / log C
    max_min: float  # max V / min V (inf when a class gets no mass at all)
    group_means: dict[str, float | None]
    per_class: np.ndarray = field(repr=False)
    chosen: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "tau": self.tau,
            "power": self.power,
            "tau_eff": self.tau_eff,
            "ratio_tail_head": _json_float(self.ratio_tail_head),
            "entropy": _json_float(self.entropy),
            "max_min": _json_float(self.max_min),
            "group_means": self.group_means,
            "chosen": self.chosen,
            "per_class": [float(x) for x in self.per_class],
        }


@dataclass(frozen=True)
class VirtualExamples:
    """Everything ``tune-tau`` computes: the whole grid, the input reference and the choice."""

    teacher: str  # a name, or "a+b" for an ensemble
    teachers: tuple[str, ...]
    groups: str  # definition used: "absolute" or "thirds"
    group_names: tuple[str, ...]  # head first, tail last
    class_groups: np.ndarray = field(repr=False)  # group name of each class
    class_order: np.ndarray = field(repr=False)  # class ids, head to tail (by train count)
    train_counts: np.ndarray = field(repr=False)
    input_counts: np.ndarray = field(repr=False)  # hard-label histogram of the cached rows
    input_stats: dict[str, Any] = field(repr=False)  # flatness() of input_counts
    grid: tuple[GridPoint, ...] = field(repr=False)
    choice: Choice
    num_samples: int
    num_views: int
    note: str | None = None  # why head/tail differ from the definition asked for
    target: float = TARGET_RATIO
    seconds: float = 0.0
    rows_per_second: float = 0.0
    # The sparse teachers among ``teachers``: {name: {"k", "rule", "rule_version"}}; their V
    # comes from the distributions their rule rebuilds, not from full logits.
    rebuilt: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.train_counts)

    @property
    def head(self) -> str:
        return self.group_names[0]

    @property
    def tail(self) -> str:
        return self.group_names[-1]

    @property
    def chosen(self) -> list[GridPoint]:
        return [g for g in self.grid if g.chosen]

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document (``plots`` is filled in by the caller that draws them)."""
        return {
            "teacher": self.teacher,
            "teachers": list(self.teachers),
            "groups": self.groups,
            "group_sizes": {g: int((self.class_groups == g).sum()) for g in self.group_names},
            "note": self.note,
            "num_samples": self.num_samples,
            "num_views": self.num_views,
            "num_classes": self.num_classes,
            "input": {
                **{
                    k: _json_float(v) if isinstance(v, float) else v
                    for k, v in self.input_stats.items()
                },
                "per_class": [int(x) for x in self.input_counts],
            },
            "class_order": [int(x) for x in self.class_order],
            "grid": [g.to_dict() for g in self.grid],
            "choice": self.choice.to_dict(),
            "target": self.target,
            "seconds": self.seconds,
            "rebuilt": self.rebuilt or None,
            "plots": [],
        }


def _json_float(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


# --------------------------------------------------------------------------- groups and figures


def _group_setup(
    train_counts: np.ndarray, groups: str
) -> tuple[str, np.ndarray, tuple[str, ...], str | None]:
    """Definition used, group of each class, group names (head first), note on a fallback."""
    if groups not in GROUP_CHOICES:
        raise UsageError(f"Expected --groups auto, absolute or thirds, got {groups!r}")
    if len(train_counts) < 3:
        raise UsageError(
            f"Expected at least 3 classes to tell head from tail, got {len(train_counts)}"
        )
    note = None
    if group_definition(train_counts, groups) == "absolute":
        names = shot_groups(train_counts)
        empty = [g for g in (ABSOLUTE_GROUPS[0], ABSOLUTE_GROUPS[-1]) if not (names == g).any()]
        if not empty:
            return "absolute", names, ABSOLUTE_GROUPS, None
        # Only reachable with --groups absolute (auto already chose thirds). METHODS §5:
        # head = many, tail = few; relative thirds when either is empty.
        note = f"shot group {' and '.join(empty)} empty, so head/tail are relative thirds"
    return "thirds", thirds_groups(train_counts), THIRDS, note


def flatness(v: np.ndarray, class_groups: np.ndarray, group_names: Sequence[str]) -> dict[str, Any]:
    """Tail/head ratio, normalised entropy, max/min and the mean of each group of ``v``."""
    v = np.asarray(v, dtype=np.float64)
    means: dict[str, float | None] = {}
    for g in group_names:
        sel = v[class_groups == g]
        means[g] = float(sel.mean()) if len(sel) else None
    head, tail = means[group_names[0]], means[group_names[-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (
            float(np.float64(tail) / np.float64(head))
            if head is not None and tail is not None
            else math.nan
        )
        total = v.sum()
        p = v / total if total > 0 else np.full_like(v, math.nan)
        logs = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)), 0.0)
        entropy = float(-(p * logs).sum() / math.log(len(v))) if len(v) > 1 else math.nan
        vmin = v.min()
        max_min = float(v.max() / vmin) if vmin > 0 else math.inf
    return {"ratio_tail_head": ratio, "entropy": entropy, "max_min": max_min, "group_means": means}


def _student(tau_eff: float) -> tuple[float, float]:
    """METHODS §5: report T/p as student T = (T/p)/2 with p = 0.5 when that is >= 1, else p = 1."""
    half = round(tau_eff / 2, 9)
    return (half, 0.5) if half >= 1 else (round(tau_eff, 9), 1.0)


def choose(
    tau_effs: Sequence[float],
    ratios: Sequence[float],
    entropies: Sequence[float],
    *,
    target: float = TARGET_RATIO,
) -> Choice:
    """The rule of thumb over grid points given by their effective temperature T/p.

    The smallest T/p whose tail/head ratio is >= ``target``; when none reaches it, the
    largest ratio (ties: higher normalised entropy, then smaller T/p). NaN ratios (an
    undefined head or tail) never win.
    """
    t = np.asarray(tau_effs, dtype=np.float64)
    r = np.asarray(ratios, dtype=np.float64)
    h = np.asarray(entropies, dtype=np.float64)
    if not (len(t) == len(r) == len(h)) or len(t) == 0:
        raise ValueError(f"Expected equal, non-empty grids, got {len(t)}, {len(r)}, {len(h)}")
    valid = ~np.isnan(r)
    if not valid.any():
        raise UsageError(
            "no grid point has a defined tail/head ratio (head and tail get no mass at all); "
            "try higher temperatures"
        )
    reached = valid & (r >= target)
    if reached.any():
        i = int(np.flatnonzero(reached)[np.argmin(t[reached])])
        tau, power = _student(float(t[i]))
        reason = (
            f"smallest T/p with tail/head >= {_fmt(target)}: T/p = {_fmt(float(t[i]))} "
            f"(tail/head {r[i]:.3f}), reported as T = {_fmt(tau)}, p = {_fmt(power)}"
        )
        return Choice(tau, power, float(t[i]), float(r[i]), True, reason)
    best = r[valid].max()
    cand = valid & (r >= best - _TIE * max(1.0, abs(best)))
    hh = np.where(cand & ~np.isnan(h), h, -np.inf)
    top = hh.max()
    if np.isfinite(top):
        cand &= hh >= top - _TIE * max(1.0, abs(top))
    i = int(np.flatnonzero(cand)[np.argmin(t[cand])])
    tau, power = _student(float(t[i]))
    reason = (
        f"no grid point reaches tail/head >= {_fmt(target)}; the flattest is taken: T/p = "
        f"{_fmt(float(t[i]))} (largest tail/head {r[i]:.3f}), reported as T = {_fmt(tau)}, "
        f"p = {_fmt(power)}; consider higher temperatures"
    )
    return Choice(tau, power, float(t[i]), float(r[i]), False, reason)


# --------------------------------------------------------------------------- streaming pass


def _resolve_teachers(cache: Cache, teacher: str | Sequence[str] | None) -> tuple[str, ...]:
    names = cache.teacher_names
    if teacher is None:
        if len(names) == 1:
            return (names[0],)
        raise UsageError(
            f"{cache.url} has {len(names)} teachers ({', '.join(names)}); "
            "choose one with --teacher NAME or several with --ensemble NAME,NAME"
        )
    chosen = (teacher,) if isinstance(teacher, str) else tuple(teacher)
    chosen = tuple(n.strip() for n in chosen)
    if not chosen or any(not n for n in chosen):
        raise UsageError(f"Expected teacher names, got {teacher!r}")
    if len(set(chosen)) != len(chosen):
        raise UsageError(f"Expected distinct teachers in the ensemble, got {', '.join(chosen)}")
    for n in chosen:
        cache.teacher(n)  # raises UsageError listing the cache's teachers
    return chosen


def _prefetch(items: Iterable[_T], depth: int = 1) -> Iterator[_T]:
    """Produce ``items`` one step ahead in a thread (read + checksum + decode overlap compute)."""
    q: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(("item", item)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the consumer, raised there
            put(("error", exc))

    thread = threading.Thread(target=produce, name="softlabels-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


@contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (the workers split the rows instead)."""
    import torch

    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)


def _chains(scales: Sequence[float]) -> list[list[int]]:
    """The scales' indices as chains ``[i0, i1, ...]`` with ``scales[i(k+1)] == 2 * scales[ik]``
    exactly, each chain by increasing scale, every index in one chain.

    ``exp(2 s d) = exp(s d) ** 2``: along a chain one exponential gives every member, the
    others are squares (one multiply each). The default grid (29 T/p from 1 to 20) needs 10
    exponentials: T/p = 11 ... 20, each halved down (20, 10, 5, 2.5; 16, 8, 4, 2, 1; ...).
    Doubling a float is exact, so chains only join scales that are exactly twice each other.
    """
    at = {float(s): i for i, s in enumerate(scales)}
    chains: list[list[int]] = []
    for i, s in sorted(enumerate(scales), key=lambda t: t[1]):
        if float(s) / 2 in at:  # reached from the half scale's chain
            continue
        chain = [i]
        while 2 * float(scales[chain[-1]]) in at:
            chain.append(at[2 * float(scales[chain[-1]])])
        chains.append(chain)
    return chains


def _reduce_rows(
    rows: np.ndarray, lo: int, hi: int, scales: Sequence[float], block: int, dev: torch.device
) -> torch.Tensor:
    """sum over rows[lo:hi] of softmax(z * s) for every scale s: [K, C] float32.

    Per block of rows: one max subtraction ``d = z - max z`` shared by every scale; along
    each :func:`_chains` chain one ``exp(s d)``, then a square per further member; for each
    scale the row sums ``S`` and the column sums of ``exp(s d) / S`` as one mat-vec with the
    weights ``1 / S`` (no normalised ``[B, C]`` array, no temporary per scale).
    """
    import torch

    k, c = len(scales), rows.shape[1]
    chains = _chains(scales)
    acc = torch.zeros(k, c, dtype=torch.float32, device=dev)
    n = min(block, hi - lo)
    x_buf = torch.empty(n, c, dtype=torch.float32, device=dev)
    e_buf = torch.empty(n, c, dtype=torch.float32, device=dev)
    w_buf = torch.empty(n, dtype=torch.float32, device=dev)
    top = torch.empty(n, 1, dtype=torch.float32, device=dev)
    for r0 in range(lo, hi, block):
        r1 = min(hi, r0 + block)
        x, e, w, m = x_buf[: r1 - r0], e_buf[: r1 - r0], w_buf[: r1 - r0], top[: r1 - r0]
        # Copied in the stored dtype, converted where the compute runs (on a GPU: half the
        # bytes over the bus, no conversion on the host).
        x.copy_(torch.from_numpy(rows[r0:r1]).to(dev, non_blocking=True))
        torch.amax(x, -1, keepdim=True, out=m)
        x.sub_(m)  # d <= 0 (NaN for NaN, +inf and all -inf rows: the caller's check)
        for chain in chains:
            for step, i in enumerate(chain):
                if step == 0:
                    torch.mul(x, scales[i], out=e).exp_()
                else:
                    e.mul_(e)  # exp(2 s d) = exp(s d) ** 2
                torch.sum(e, -1, out=w)
                acc[i].addmv_(e.T, w.reciprocal_())
    return acc


def _teacher_chunks(teacher: Any) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, logits [rows, V, C]) of a teacher in order, each read once (checksums
    verified): a dense teacher's logits, a sparse one's dense view rebuilt per chunk by its
    rule (stores/topk.py)."""
    teacher.check_rule()
    yield from teacher.dense_chunks()


def _bad_rows(rows: np.ndarray, views: int) -> np.ndarray:
    """Sample rows (of a chunk) whose logits give no probabilities: NaN, +inf, all -inf."""
    z = rows.astype(np.float32).reshape(-1, views, rows.shape[-1])
    bad = np.isnan(z).any(-1) | np.isposinf(z).any(-1) | np.isneginf(z).all(-1)
    return np.flatnonzero(bad.any(-1))


def _sample_ids(cache: Cache, rows: np.ndarray) -> list[str]:
    try:
        return cache.sample_ids(rows)
    except Exception:  # the table is optional for this message: fall back to row numbers
        return [f"row {r}" for r in rows]


def _stream(
    cache: Cache,
    teachers: Sequence[str],
    tau_effs: Sequence[float],
    device: str,
    progress: Progress | None,
) -> np.ndarray:
    """V for each effective temperature: [K, C] float64, averaged over views and teachers."""
    import torch

    from softlabels.device import resolve_device

    dev = resolve_device(device)
    arrays = [cache.teacher(n) for n in teachers]
    n_rows, n_views, n_classes = arrays[0].dense_shape
    scales = [1.0 / t for t in tau_effs]
    total = torch.zeros(len(tau_effs), n_classes, dtype=torch.float64, device=dev)
    if dev.type == "cpu":
        workers = _CPU_WORKERS or max(1, torch.get_num_threads())
        block = max(1, _BLOCK_ELEMENTS // n_classes)
    else:  # one stream of large blocks: the device parallelises inside each op
        workers, block = 1, max(1, cache.chunk_size * n_views)
    done = 0
    if progress:
        progress(0, n_rows)
    # Dense teachers: their logits; sparse ones: their dense views, rebuilt chunk by chunk.
    chunks = _prefetch(zip(*(_teacher_chunks(a) for a in arrays), strict=True))
    # CPU: the workers split each chunk's rows, one torch thread each (no nested thread teams).
    threads = 1 if workers > 1 else torch.get_num_threads()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="softlabels-ve")
    with _intra_op_threads(threads), pool:
        for parts in chunks:
            start, stop = parts[0][0], parts[0][1]
            for name, (_s, _e, data) in zip(teachers, parts, strict=True):
                rows = data.reshape(-1, n_classes)  # (sample, view) pairs; a view, no copy
                cuts = np.linspace(0, len(rows), workers + 1).astype(int)
                futures = [
                    pool.submit(_reduce_rows, rows, int(lo), int(hi), scales, block, dev)
                    for lo, hi in pairwise(cuts)
                    if hi > lo
                ]
                part = sum((f.result() for f in futures), torch.zeros_like(total))
                # Probabilities are finite for any finite logits (and -inf ones), so one check
                # of the chunk's sums catches NaN and +inf without a pass of its own.
                if not bool(torch.isfinite(part).all()):
                    bad = _bad_rows(data, n_views) + start
                    raise nonfinite_error(
                        f"teacher {name!r} of {cache.url} has NaN/Inf logits",
                        bad,
                        "redo the dump of that teacher",
                        names=lambda rows: _sample_ids(cache, rows),
                        shown=5,
                    )
                total += part
            done += stop - start
            if progress:
                progress(done, n_rows)
            del parts, data  # let this chunk go before waiting for the next one
    # Mean over views (per sample) and over the ensemble's teachers, summed over samples.
    return (total / (n_views * len(teachers))).cpu().numpy()


def _input_counts(cache: Cache) -> np.ndarray:
    """Class histogram of the cached rows, streamed chunk by chunk (never all labels at once)."""
    counts = np.zeros(cache.num_classes, dtype=np.int64)
    for _s, _e, labels in cache.labels_reader().iter_chunks():
        counts += np.bincount(labels.astype(np.int64), minlength=cache.num_classes)
    return counts


def virtual_examples(
    cache: Cache | str | os.PathLike[str],
    teacher: str | Sequence[str] | None = None,
    *,
    taus: Sequence[float] = DEFAULT_TAUS,
    powers: Sequence[float] = DEFAULT_POWERS,
    groups: str = "auto",
    device: str = "cpu",
    target: float = TARGET_RATIO,
    progress: Progress | None = None,
) -> VirtualExamples:
    """V(T, p) of a cached teacher (or an ensemble) over a grid, its flatness, and the rule's pick.

    ``teacher``: a name, a sequence of names (an ensemble: probabilities averaged over the
    teachers per sample and view), or None when the cache has one teacher. ``groups``:
    ``auto`` (absolute shot groups unless one is empty, then thirds), ``absolute`` or
    ``thirds``. ``progress(done_rows, total_rows)`` is called after every chunk.

    >>> ve = softlabels.virtual_examples("runs/c100.slc", "bsce")   # doctest: +SKIP
    >>> ve.choice.tau, ve.choice.power
    """
    from softlabels.stores.reader import Cache

    t0 = time.perf_counter()
    if not isinstance(cache, Cache):
        cache = Cache(os.fspath(cache))
    names = _resolve_teachers(cache, teacher)
    grid = _grid(taus, powers)
    if not math.isfinite(target) or target <= 0:
        raise UsageError(f"Expected a target tail/head ratio > 0, got {target}")
    for n in names:
        cache.require_complete(n)
    input_counts = _input_counts(cache)
    train = cache.dataset.train_counts
    train_counts = (
        np.asarray(train, dtype=np.int64)
        if train is not None and len(train) == cache.num_classes
        else input_counts
    )
    definition, class_groups, group_names, note = _group_setup(train_counts, groups)
    tau_effs = sorted({te for _t, _p, te in grid})
    sums = _stream(cache, names, tau_effs, device, progress)
    per_eff = {te: sums[k] for k, te in enumerate(tau_effs)}  # shared by the points of a T/p
    figures = {te: flatness(sums[k], class_groups, group_names) for k, te in enumerate(tau_effs)}
    choice = choose(
        tau_effs,
        [figures[te]["ratio_tail_head"] for te in tau_effs],
        [figures[te]["entropy"] for te in tau_effs],
        target=target,
    )
    if note:
        choice = Choice(
            choice.tau,
            choice.power,
            choice.tau_eff,
            choice.ratio_tail_head,
            choice.reached,
            f"{choice.reason} ({note})",
        )
    # The marked row: the grid point the choice is reported as, else every point of its T/p.
    exact = [(t, p) for t, p, _te in grid if (t, p) == (choice.tau, choice.power)]
    points = tuple(
        GridPoint(
            tau=t,
            power=p,
            tau_eff=te,
            per_class=per_eff[te],
            chosen=(t, p) in exact if exact else te == choice.tau_eff,
            **figures[te],
        )
        for t, p, te in grid
    )
    seconds = time.perf_counter() - t0
    return VirtualExamples(
        teacher="+".join(names),
        teachers=names,
        groups=definition,
        group_names=tuple(group_names),
        class_groups=class_groups,
        class_order=np.lexsort((np.arange(len(train_counts)), -train_counts)),
        train_counts=train_counts,
        input_counts=input_counts,
        input_stats=flatness(input_counts, class_groups, group_names),
        grid=points,
        choice=choice,
        num_samples=cache.num_samples,
        num_views=cache.num_views,
        note=note,
        target=target,
        seconds=seconds,
        rows_per_second=cache.num_samples / seconds if seconds > 0 else 0.0,
        rebuilt=_rebuilt(cache, names),
    )


def _rebuilt(cache: Cache, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The sparse teachers among ``names``, with K and the rule their V was rebuilt by."""
    out: dict[str, dict[str, Any]] = {}
    for n in names:
        topk = cache.teacher(n).info.topk
        if topk is not None:
            out[n] = {"k": topk.k, "rule": topk.rule, "rule_version": topk.rule_version}
    return out


def check_writable(cache: Cache) -> None:
    """Fail now, not after the pass, when the choice could not be stored (lock held, read-only)."""
    from softlabels.stores.lock import CacheLock

    try:
        with CacheLock(cache.loc, owner="tune-tau"):
            pass
    except OSError as exc:  # permission denied, read-only file system
        raise UsageError(
            f"{cache.url} is not writable ({exc.strerror}); use --dry-run to only compute"
        ) from None


def store_choice(cache: Cache | str, result: VirtualExamples) -> dict[str, Any]:
    """Write the choice into the cache's root metadata under the lock: as the latest
    (``tune_tau``) and as its teacher's (``tune_tau_by_teacher[teacher]``, the one
    ``distill --tau auto`` uses for that teacher's students). Returns what was stored."""
    from softlabels.stores.schema import TauChoice, TuneTau
    from softlabels.stores.writer import set_tune_tau

    url = cache if isinstance(cache, str) else cache.url
    choice = result.choice
    value = TuneTau(
        teacher=result.teacher,
        choice=TauChoice(
            tau=choice.tau, power=choice.power, tau_eff=choice.tau_eff, reason=choice.reason
        ),
        groups=result.groups,
        taus=sorted({g.tau for g in result.grid}),
        powers=sorted({g.power for g in result.grid}, reverse=True),
    )
    set_tune_tau(url, value, owner="tune-tau")
    return value.to_dict()
