"""Sparse (top-k) teacher outputs: the encoding, the rebuild rule and its measured error
(METHODS §12), in one place.

Stored per (row, view): the K largest logits ``z_(1) >= ... >= z_(K)`` (``topk/values``, in
the cache's dtype), their class ids (``topk/indices``: uint16 when C <= 65,536, else
int32) and statistics of the other ``C - K`` logits (``topk/rest``, float32, one column per
name of :data:`REST_STATS`): ``lse = log sum_{j not in top K} exp(z_j)``.

The rule, ``equal-rest`` version 1: the rest is ``C - K`` equal logits
``m = lse - log(C - K)``. Its **dense view** (:func:`dense_view`) puts the K values at their
ids and ``m`` everywhere else: one ``[.., C]`` logit vector, so ``softmax(dense / T)`` *is*
the rebuilt distribution at every temperature T, and DiVE's ``normalize(softmax_T ** p)``
is ``softmax(dense * p / T)``: every loss takes it unchanged, as it takes dense logits.
At T = 1 it is exact in total: the K probabilities and the rest's mass are those of the
full logits. At T > 1 the rest's mass is over-estimated (the power-mean inequality), and
within the rest the mass is spread evenly whatever the true spread was.

Why this rule: measured on a 100-class teacher (benchmarks/RESULTS.md, "Sparse teacher
outputs"), the error at T >= 2 is dominated by the unknown spread *within* the rest: even
the exact rest mass at each T (an oracle no stored statistic beats when the rest is spread
evenly) removes only about a third of the KL of the equal-rest rule, and a rule that
matched it (a second statistic, e.g. the rest's log-sum-exp at T = 2) would need a
temperature-dependent target, which no dense logit vector gives. A rule with a dense form
keeps every loss, tune-tau and the ensembles unchanged.

Every function takes numpy arrays (host) or torch tensors (any device: the targets of a
batch are rebuilt where they are used, ``[B, C]`` at a time); torch is never imported here.

The error (:func:`chunk_error`) is measured at dump time against the teacher's float32
output, before the cast to the cache's dtype: ``KL(softmax_T(teacher) || rebuilt_T)`` for T
in :data:`ERROR_TAUS` and for DiVE's target at ``(T, p) =`` :data:`DIVE`, mean and max over
the chunk's (row, view) pairs, and the top-1 agreement.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from softlabels.stores.errors import CacheError, UsageError
from softlabels.stores.schema import TOPK_ERROR, TOPK_INDICES, TOPK_REST, TOPK_VALUES, TopKInfo

__all__ = [
    "DIVE",
    "ERROR_COLUMNS",
    "ERROR_TAUS",
    "MAX_UINT16_CLASSES",
    "REST_STATS",
    "RULE",
    "RULE_VERSION",
    "check_k",
    "check_rule",
    "chunk_error",
    "dense_view",
    "encode",
    "encode_chunk",
    "encode_chunks",
    "error_summary",
    "error_targets",
    "index_dtype",
    "log_probs",
    "top_indices",
    "topk_info",
]

RULE = "equal-rest"
RULE_VERSION = 1
REST_STATS: tuple[str, ...] = ("lse",)  # the columns of topk/rest
MAX_UINT16_CLASSES = 65_536  # class ids 0 .. 65,535 fit uint16

ERROR_TAUS: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
# DiVE's target normalize(softmax_T ** p) at the CIFAR-100-LT defaults (METHODS §5): a column
# of its own, as T/p = 6 is none of ERROR_TAUS (T = 4, p = 0.5 would repeat T = 8).
DIVE: tuple[float, float] = (3.0, 0.5)


def _tag(tau: float) -> str:
    return f"t{tau:g}"


ERROR_COLUMNS: tuple[str, ...] = (
    *(f"kl_{stat}_{_tag(t)}" for t in ERROR_TAUS for stat in ("mean", "max")),
    "kl_mean_dive",
    "kl_max_dive",
    "top1_agreement",
)


# --------------------------------------------------------------------------- checks


def index_dtype(num_classes: int) -> str:
    """The dtype of stored class ids: uint16 when every id fits, else int32 (never a float)."""
    return "uint16" if num_classes <= MAX_UINT16_CLASSES else "int32"


def check_k(k: int, num_classes: int) -> int:
    """K itself, or a one-line UsageError unless 1 <= K < C."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise UsageError(f"Expected --topk K >= 1, got {k!r}")
    if k >= num_classes:
        raise UsageError(
            f"Expected --topk K < C = {num_classes} classes (K >= C keeps every logit: drop "
            f"--topk for a dense cache), got {k}"
        )
    return k


def check_rule(rule: str | None, version: int | None, where: str) -> None:
    """Refuse, in one line, top-k outputs stored under a rule this version cannot rebuild."""
    if rule != RULE or version != RULE_VERSION:
        raise CacheError(
            f"{where} stores top-k outputs under rule {rule!r} version {version!r}; this "
            f"softlabels rebuilds {RULE!r} version {RULE_VERSION}: upgrade softlabels"
        )


# --------------------------------------------------------------------------- encoding


def top_indices(z: np.ndarray, k: int) -> np.ndarray:
    """Ids of the K largest entries of each row of ``z`` [M, C], by value descending, equal
    values by smaller id first (the order of a stable descending sort); int64 [M, K]."""
    c = z.shape[-1]
    kth = np.partition(z, c - k, axis=-1)[:, c - k]  # the K-th largest value of each row
    above = z > kth[:, None]
    tie = z == kth[:, None]
    need = k - above.sum(-1)  # how many of the values equal to the K-th are kept (>= 1)
    take = above | (tie & (np.cumsum(tie, axis=-1) <= need[:, None]))
    ids = np.nonzero(take)[1].reshape(-1, k)  # row-major: ascending ids within each row
    order = np.argsort(-np.take_along_axis(z, ids, -1), axis=-1, kind="stable")
    return np.take_along_axis(ids, order, -1)


def _logsumexp(x: np.ndarray) -> np.ndarray:
    top = x.max(-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return (top + np.log(np.exp(x - top).sum(-1, keepdims=True)))[..., 0]


def encode(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, indices, rest)`` of finite logits ``[..., C]``: the K largest in the
    logits' dtype ``[..., K]``, their ids ``[..., K]`` (:func:`index_dtype`), and the rest's
    statistics ``[..., R]`` float32 (computed in float64 from the logits as given)."""
    z = np.asarray(logits)
    c = int(z.shape[-1])
    check_k(k, c)
    lead = z.shape[:-1]
    flat = z.reshape(-1, c)
    ids = top_indices(flat.astype(np.float32), k)  # exact for float16 and float32
    values = np.take_along_axis(flat, ids, -1)
    rest64 = flat.astype(np.float64)
    np.put_along_axis(rest64, ids, -np.inf, axis=-1)
    rest = _logsumexp(rest64)[:, None].astype(np.float32)
    return (
        values.reshape(*lead, k),
        ids.astype(index_dtype(c)).reshape(*lead, k),
        rest.reshape(*lead, len(REST_STATS)),
    )


# --------------------------------------------------------------------------- the rule


def _rest_logit(num_rest: int) -> float:
    """``log(C - K)`` as the float32 the rule subtracts (exactly the same on every device)."""
    return float(np.float32(math.log(num_rest)))


def _rest_value(rest: np.ndarray, num_rest: int) -> np.ndarray:
    """The rule's logit of every rest class, ``m = lse - log(C - K)``, float32 (numpy)."""
    return rest[..., 0].astype(np.float32) - np.float32(_rest_logit(num_rest))


def dense_view(values: Any, indices: Any, rest: Any, num_classes: int) -> Any:
    """The rule's dense logits ``[..., C]`` float32: the K values at their ids, ``m = lse -
    log(C - K)`` elsewhere. numpy in, numpy out; a torch tensor in, a tensor on its device
    out (``[B, C]`` per batch: never more than the rows asked for)."""
    k = int(values.shape[-1])
    n = num_classes - k
    if n < 1:
        raise UsageError(f"Expected K < C for top-k outputs, got K = {k}, C = {num_classes}")
    log_n = _rest_logit(n)
    if isinstance(values, np.ndarray):
        m = _rest_value(np.asarray(rest), n)
        out = np.repeat(m[..., None], num_classes, axis=-1)
        ids = np.asarray(indices).astype(np.int64)
        np.put_along_axis(out, ids, values.astype(np.float32), axis=-1)
        return out
    m = rest[..., 0].float() - log_n  # a torch tensor: the same float32 arithmetic
    out = m.unsqueeze(-1).expand(*m.shape, num_classes).contiguous()
    return out.scatter_(-1, indices.long(), values.float())


def log_probs(
    values: Any, indices: Any, rest: Any, num_classes: int, *, tau: float = 1.0, power: float = 1.0
) -> Any:
    """Rebuilt log-probabilities ``[..., C]`` at temperature ``tau`` (and DiVE's power ``p``:
    ``normalize(softmax_T ** p)``), straight from the stored arrays (numpy or torch)."""
    if not (tau > 0 and power > 0):
        raise UsageError(f"Expected a temperature and a power > 0, got {tau}, {power}")
    z = dense_view(values, indices, rest, num_classes) * (power / tau)
    if isinstance(z, np.ndarray):
        return z - _logsumexp(z)[..., None]
    return z.log_softmax(-1)


# --------------------------------------------------------------------------- measured error


def chunk_error(
    teacher: np.ndarray, values: np.ndarray, indices: np.ndarray, rest: np.ndarray
) -> np.ndarray:
    """One row of ``topk/error`` (float32, :data:`ERROR_COLUMNS`): the KL of the rebuilt
    targets from the teacher's own logits ``[..., C]`` (float32, before any cast), mean and
    max over (row, view) pairs, and the fraction whose top-1 class is the same.

    Computed in float64 without building the rebuilt ``[.., C]`` arrays: the rule's dense
    view is the K values and one rest logit ``m``, so with ``b = p / T`` (DiVE's
    ``normalize(softmax_T ** p)`` is the softmax at ``T / p``), ``y = b (z - max z)``,
    ``e = exp(y)``, ``S = sum e`` and ``P = e / S`` the teacher's target:
    ``KL = sum(e y) / S - log S - (sum_top P_j b v_j + P_rest b m - log Z)`` with
    ``log Z = logaddexp(logsumexp(b v), log(C - K) + b m)``. One pass over C per target.
    """
    c = int(teacher.shape[-1])
    z = np.asarray(teacher, dtype=np.float64).reshape(-1, c)
    k = int(values.shape[-1])
    ids = np.asarray(indices).reshape(-1, k).astype(np.int64)
    v = np.asarray(values).reshape(-1, k).astype(np.float32).astype(np.float64)
    m = _rest_value(np.asarray(rest).reshape(len(z), -1), c - k).astype(np.float64)
    shifted = z - z.max(-1, keepdims=True)
    log_n = math.log(c - k)
    out: list[float] = []
    for tau, power in [(t, 1.0) for t in ERROR_TAUS] + [DIVE]:
        b = power / tau
        y = shifted * b
        e = np.exp(y)
        total = e.sum(-1)
        own = np.einsum("ij,ij->i", e, y) / total - np.log(total)  # sum P log P
        p_top = np.take_along_axis(e, ids, -1) / total[:, None]
        log_z = np.logaddexp(_logsumexp(b * v), log_n + b * m)
        cross = (p_top * b * v).sum(-1) + (1.0 - p_top.sum(-1)) * b * m - log_z
        kl = np.maximum(own - cross, 0.0)  # >= 0 up to rounding
        out += [float(kl.mean()), float(kl.max())] if len(kl) else [0.0, 0.0]
    agree = np.argmax(z, -1) == ids[:, 0]
    out.append(float(agree.mean()) if len(agree) else 1.0)
    return np.asarray(out, dtype=np.float32)


def error_summary(
    errors: np.ndarray, rows_per_chunk: Sequence[int], columns: Sequence[str] = ERROR_COLUMNS
) -> dict[str, float]:
    """A teacher's error from its chunks' rows of ``topk/error``: means weighted by the
    chunks' rows, maxima the max of the chunks' maxima."""
    e = np.asarray(errors, dtype=np.float64).reshape(len(rows_per_chunk), len(columns))
    w = np.asarray(rows_per_chunk, dtype=np.float64)
    total = w.sum()
    out: dict[str, float] = {}
    for j, name in enumerate(columns):
        if "_max_" in name:
            out[name] = float(e[:, j].max()) if len(e) else 0.0
        else:
            out[name] = float((e[:, j] * w).sum() / total) if total > 0 else 0.0
    return out


def error_targets() -> list[Mapping[str, Any]]:
    """The targets the error columns measure, in order: ``{"name", "tau", "power"}``."""
    rows: list[Mapping[str, Any]] = [{"name": _tag(t), "tau": t, "power": 1.0} for t in ERROR_TAUS]
    rows.append({"name": "dive", "tau": DIVE[0], "power": DIVE[1]})
    return rows


# --------------------------------------------------------------------------- what a writer stores


def topk_info(k: int, num_classes: int) -> TopKInfo:
    """The ``teachers.<name>.topk`` record of a teacher stored top-``k`` under this rule."""
    return TopKInfo(
        k=check_k(k, num_classes),
        index_dtype=index_dtype(num_classes),
        rest=REST_STATS,
        rule=RULE,
        rule_version=RULE_VERSION,
        error_columns=ERROR_COLUMNS,
        error_taus=ERROR_TAUS,
        error_dive=DIVE,
    )


def encode_chunk(teacher: np.ndarray, dtype: Any, k: int) -> dict[str, np.ndarray]:
    """The sparse arrays of one chunk, by teacher array, from the teacher's float32 logits
    ``[rows, V, C]``: the top-k of the logits cast to the cache's ``dtype`` (so values and
    ids are those of the dense cache of that dtype), the rest's statistics, and the chunk's
    row of ``topk/error`` (``[1, M]``). The cast must be finite (the caller checks)."""
    cast = np.asarray(teacher).astype(dtype)
    values, indices, rest = encode(cast, k)
    return {
        TOPK_VALUES: values,
        TOPK_INDICES: indices,
        TOPK_REST: rest,
        TOPK_ERROR: chunk_error(teacher, values, indices, rest)[None],
    }


def encode_chunks(
    teacher: np.ndarray, dtype: Any, k: int, chunk_size: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`encode_chunk` over every chunk of ``teacher`` ``[N, V, C]`` (float32): the row
    arrays ``[N, ...]`` and the per-chunk error ``[num_chunks, M]``, by teacher array (what
    :func:`~softlabels.stores.writer.add_teacher` takes)."""
    parts = [
        encode_chunk(teacher[start : start + chunk_size], dtype, k)
        for start in range(0, len(teacher), chunk_size)
    ]
    rows = {
        w: np.concatenate([p[w] for p in parts]) for w in (TOPK_VALUES, TOPK_INDICES, TOPK_REST)
    }
    return rows, {TOPK_ERROR: np.concatenate([p[TOPK_ERROR] for p in parts])}
