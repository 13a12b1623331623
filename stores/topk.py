"""Sparse (top-k) teacher outputs: the encoding, the rebuild rule and its measured error
(METHODS §12), in one place.

Stored per (row, view): the K largest logits ``z_(1) >= ... >= z_(K)`` (``topk/values``, in
the cache's dtype), their class ids (``topk/indices``: uint16 when C <= 65,536, else
int32) and statistics of the other ``C - K`` logits (``topk/rest``, float32, one column per
name of :data:`REST_STATS`): ``lse = log sum_{j not in top K} exp(z_j)`` and ``std``, the
population standard deviation of those C - K logits. Per teacher, stored whole: its
**rest profile** ``topk/profile`` (float32): ``b[y, c]``, the mean over the (row, view)
pairs of label y that have class c in their rest of ``z_c - mean(rest z)`` (``[C, C]``,
:data:`PROFILE_MODES` "label"), or above :data:`PROFILE_LABEL_MAX_CLASSES` classes one row
``b[c]`` over all labels ("class"; C x C floats would be too many). A label's entry where
none of its pairs had c in the rest is the all-label one.

The rule, ``label-profile`` version 2: a view of a row with label y gets the profile ``p =
b[y]`` (a mixed view, ``lam b[y_i] + (1 - lam) b[y_j]`` with its partner's label), and its
rest logits are ``z_c = m + a (p_c - mean_rest p)``, where ``a = std / std_rest(p)`` gives
them the stored spread (0 when the profile is flat on the rest) and ``m`` is solved so that
their log-sum-exp is ``lse`` exactly. Its **dense view** (:func:`dense_view`) is the K values
at their ids and those logits elsewhere: one ``[.., C]`` logit vector, so ``softmax(dense /
T)`` *is* the rebuilt distribution at every temperature T, and DiVE's ``normalize(softmax_T
** p)`` is ``softmax(dense * p / T)``: every loss takes it unchanged. At T = 1 it is exact in
total: the K probabilities and the rest's mass are those of the full logits.

Why this rule: measured on the 100-class bed (benchmarks/RESULTS.md, "Top-k rest rules"),
the error at T >= 2 is dominated by how the rest's mass is spread over its classes: the
earlier rule (``equal-rest`` v1: C - K equal logits ``m = lse - log(C - K)``, which a
cache may still hold and every reader still rebuilds) spreads it evenly and loses a
long-tail teacher's lean to the tail, so tune-tau on it chose T = 10 where the dense
teacher gives 3.25. The label-conditioned profile scaled to the rest's own spread cuts the
KL at T = 4 about fivefold at K = 10 and keeps tune-tau's choice within one grid step.

Every function takes numpy arrays (host) or torch tensors (any device: the targets of a
batch are rebuilt where they are used, ``[B, C]`` at a time); torch is never imported here.

The error (:func:`chunk_error`) is measured at dump time against the teacher's float32
output, before the cast to the cache's dtype: ``KL(softmax_T(teacher) || rebuilt_T)`` for T
in :data:`ERROR_TAUS` and for DiVE's target at ``(T, p) =`` :data:`DIVE`, mean and max over
the chunk's (row, view) pairs, and the top-1 agreement. The profile is fitted first
(:class:`ProfileFit`, by the dump on chunks spread over the whole split), so the error is
that of exactly the targets readers rebuild.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from softlabels.stores.errors import CacheError, UsageError
from softlabels.stores.schema import (
    TOPK_ERROR,
    TOPK_INDICES,
    TOPK_PROFILE,
    TOPK_REST,
    TOPK_VALUES,
    TopKInfo,
)

__all__ = [
    "DIVE",
    "ERROR_COLUMNS",
    "ERROR_TAUS",
    "LEGACY_RULES",
    "MAX_UINT16_CLASSES",
    "PROFILE_LABEL_MAX_CLASSES",
    "PROFILE_MODES",
    "REST_STATS",
    "RULE",
    "RULE_VERSION",
    "ProfileFit",
    "check_k",
    "check_rule",
    "chunk_error",
    "dense_view",
    "encode",
    "encode_chunk",
    "encode_chunks",
    "error_summary",
    "error_targets",
    "fit_profile",
    "index_dtype",
    "log_probs",
    "pair_profiles",
    "profile_mode",
    "top_indices",
    "topk_info",
]

RULE = "label-profile"
RULE_VERSION = 2
REST_STATS: tuple[str, ...] = ("lse", "std")  # the columns of topk/rest
# Rules an older softlabels wrote, which this one still rebuilds: their topk/rest columns.
LEGACY_RULES: Mapping[tuple[str, int], tuple[str, ...]] = {("equal-rest", 1): ("lse",)}
PROFILE_MODES: tuple[str, ...] = ("label", "class")
PROFILE_LABEL_MAX_CLASSES = 4_096  # C x C float32 <= 64 MiB; above, one all-label profile
MAX_UINT16_CLASSES = 65_536  # class ids 0 .. 65,535 fit uint16
_FLAT = 1e-6  # a profile whose spread over the rest is below this is flat: equal rest logits
_BLOCK = 1 << 21  # elements per block of the error computation (bounded temporaries)

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


def profile_mode(num_classes: int) -> str:
    """``"label"`` (a profile per label, ``[C, C]``) up to :data:`PROFILE_LABEL_MAX_CLASSES`
    classes, else ``"class"`` (one profile ``[1, C]``)."""
    return "label" if num_classes <= PROFILE_LABEL_MAX_CLASSES else "class"


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
    if (rule, version) != (RULE, RULE_VERSION) and (rule, version) not in LEGACY_RULES:
        raise CacheError(
            f"{where} stores top-k outputs under rule {rule!r} version {version!r}; this "
            f"softlabels rebuilds {RULE!r} version {RULE_VERSION} (and "
            f"{', '.join(f'{r!r} version {v}' for r, v in LEGACY_RULES)}): upgrade softlabels"
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


def _rest_mask(ids: np.ndarray, num_classes: int) -> np.ndarray:
    """bool [M, C]: True on the classes outside each row's top K."""
    mask = np.ones((len(ids), num_classes), bool)
    np.put_along_axis(mask, ids, False, axis=-1)
    return mask


def _rest_deviation(z64: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each row's rest logits minus their mean ``[M, C]`` float64 (0 on its top K)."""
    mean = np.where(mask, z64, 0.0).sum(-1, keepdims=True) / mask.sum(-1, keepdims=True)
    return np.where(mask, z64 - mean, 0.0)


def encode(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(values, indices, rest)`` of finite logits ``[..., C]``: the K largest in the
    logits' dtype ``[..., K]``, their ids ``[..., K]`` (:func:`index_dtype`), and the rest's
    statistics ``[..., R]`` float32 (:data:`REST_STATS`, computed in float64 from the logits
    as given)."""
    z = np.asarray(logits)
    c = int(z.shape[-1])
    check_k(k, c)
    lead = z.shape[:-1]
    flat = z.reshape(-1, c)
    ids = top_indices(flat.astype(np.float32), k)  # exact for float16 and float32
    values = np.take_along_axis(flat, ids, -1)
    z64 = flat.astype(np.float64)
    mask = _rest_mask(ids, c)
    lse = _logsumexp(np.where(mask, z64, -np.inf))
    std = np.sqrt((_rest_deviation(z64, mask) ** 2).sum(-1) / (c - k))
    rest = np.stack([lse, std], -1).astype(np.float32)
    return (
        values.reshape(*lead, k),
        ids.astype(index_dtype(c)).reshape(*lead, k),
        rest.reshape(*lead, len(REST_STATS)),
    )


# --------------------------------------------------------------------------- the profile


class ProfileFit:
    """A teacher's rest profile (``topk/profile``), accumulated over (row, view) pairs:
    per label y (or over all labels, mode "class") and class c, the weighted mean of ``z_c -
    mean(rest z)`` over the pairs with c in their rest. A mixed view counts for its row's
    label with weight ``lam`` and for its partner's with ``1 - lam``."""

    def __init__(self, num_classes: int, k: int, mode: str | None = None) -> None:
        self.num_classes, self.k = int(num_classes), check_k(k, num_classes)
        self.mode = profile_mode(num_classes) if mode is None else mode
        if self.mode not in PROFILE_MODES:
            raise UsageError(f"Expected a profile mode in {PROFILE_MODES}, got {self.mode!r}")
        rows = self.num_classes if self.mode == "label" else 1
        self._sum = np.zeros((rows, self.num_classes))
        self._count = np.zeros((rows, self.num_classes))

    def add(
        self,
        logits: np.ndarray,
        labels: np.ndarray,
        partner_labels: np.ndarray | None = None,
        lam: np.ndarray | None = None,
    ) -> None:
        """Pairs ``logits`` [rows, V, C] (the values the cache keeps: cast to its dtype) of
        rows with ``labels`` [rows]; mixed views: their partners' labels and ``lam`` [rows, V]."""
        z = np.asarray(logits)
        c, k = self.num_classes, self.k
        flat = z.reshape(-1, c)
        ids = top_indices(flat.astype(np.float32), k)
        mask = _rest_mask(ids, c)
        dev = _rest_deviation(flat.astype(np.float64), mask)
        if self.mode == "class":
            self._sum[0] += dev.sum(0)
            self._count[0] += mask.sum(0)
            return
        views = z.shape[1] if z.ndim == 3 else 1
        own = np.repeat(np.asarray(labels, np.int64).reshape(-1), views)
        weight = np.ones(len(flat)) if lam is None else np.asarray(lam, np.float64).reshape(-1)
        np.add.at(self._sum, own, dev * weight[:, None])
        np.add.at(self._count, own, mask * weight[:, None])
        if partner_labels is not None and lam is not None:
            other = np.asarray(partner_labels, np.int64).reshape(-1)
            mixed = weight < 1.0
            w = (1.0 - weight[mixed])[:, None]
            np.add.at(self._sum, other[mixed], dev[mixed] * w)
            np.add.at(self._count, other[mixed], mask[mixed] * w)

    def table(self) -> np.ndarray:
        """The profile, float32 ``[C, C]`` ("label") or ``[1, C]`` ("class")."""
        total, count = self._sum.sum(0), self._count.sum(0)
        overall = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
        by_row = np.divide(
            self._sum, self._count, out=np.zeros_like(self._sum), where=self._count > 0
        )
        return np.where(self._count > 0, by_row, overall[None]).astype(np.float32)


def fit_profile(
    logits: np.ndarray,
    k: int,
    labels: np.ndarray,
    partner_labels: np.ndarray | None = None,
    lam: np.ndarray | None = None,
) -> np.ndarray:
    """:class:`ProfileFit` over every pair of ``logits`` [N, V, C] at once: the table."""
    fit = ProfileFit(int(np.asarray(logits).shape[-1]), k)
    fit.add(logits, labels, partner_labels, lam)
    return fit.table()


def pair_profiles(table: Any, labels: Any, partner_labels: Any = None, lam: Any = None) -> Any:
    """The profile of each (row, view) pair ``[..., C]`` (numpy or torch, as ``table``):
    ``table[labels]`` (a one-row table: that row, broadcast), a mixed view's ``lam
    table[y_i] + (1 - lam) table[y_j]``. ``labels`` has the pairs' shape or broadcasts to
    it (``[rows, 1]`` for every view of a row); ``partner_labels`` and ``lam`` the pairs'."""
    if table.shape[0] == 1:
        return table[0]
    own = table[labels]
    if lam is None or partner_labels is None:
        return own
    w = lam[..., None]
    return w * own + (1 - w) * table[partner_labels]


# --------------------------------------------------------------------------- the rule


def _rest_logit(num_rest: int) -> float:
    """``log(C - K)`` as the float32 the rule subtracts (exactly the same on every device)."""
    return float(np.float32(math.log(num_rest)))


def dense_view(values: Any, indices: Any, rest: Any, num_classes: int, profile: Any = None) -> Any:
    """The rule's dense logits ``[..., C]`` float32: the K values at their ids, the rest's
    logits elsewhere. numpy in, numpy out; a torch tensor in, a tensor on its device out
    (``[B, C]`` per batch: never more than the rows asked for).

    ``profile``: the pairs' rest profiles ``[..., C]`` (:func:`pair_profiles`) for rule
    ``label-profile``; None (or one rest column: rule ``equal-rest`` v1) gives C - K equal
    logits ``m = lse - log(C - K)``."""
    k = int(values.shape[-1])
    n = num_classes - k
    if n < 1:
        raise UsageError(f"Expected K < C for top-k outputs, got K = {k}, C = {num_classes}")
    if profile is None or rest.shape[-1] < 2:
        return _equal_view(values, indices, rest, num_classes)
    if isinstance(values, np.ndarray):
        ids = np.asarray(indices).astype(np.int64)
        mask = np.ones((*ids.shape[:-1], num_classes), bool)
        np.put_along_axis(mask, ids, False, axis=-1)
        prof = np.asarray(profile, np.float32)
        mean = np.where(mask, prof, np.float32(0)).sum(-1, keepdims=True) / np.float32(n)
        dev = np.where(mask, prof - mean, np.float32(0))
        spread = np.sqrt((dev * dev).sum(-1) / np.float32(n))
        stats = np.asarray(rest, np.float32)
        scale = np.where(spread > _FLAT, stats[..., 1] / np.maximum(spread, _FLAT), 0)
        r = (scale[..., None] * dev).astype(np.float32)
        m = stats[..., 0] - _logsumexp(np.where(mask, r, -np.inf)).astype(np.float32)
        out = r + m[..., None]
        np.put_along_axis(out, ids, np.asarray(values).astype(np.float32), axis=-1)
        return out
    import torch  # a tensor came in: torch is there

    ids = indices.long()
    mask = torch.ones((*ids.shape[:-1], num_classes), dtype=torch.bool, device=ids.device)
    mask.scatter_(-1, ids, False)
    prof = profile.float()
    mean = torch.where(mask, prof, 0.0).sum(-1, keepdim=True) / n
    dev = torch.where(mask, prof - mean, 0.0)
    spread = dev.square().sum(-1).div(n).sqrt()
    stats = rest.float()
    scale = torch.where(spread > _FLAT, stats[..., 1] / spread.clamp_min(_FLAT), 0.0)
    r = scale.unsqueeze(-1) * dev
    m = stats[..., 0] - torch.where(mask, r, float("-inf")).logsumexp(-1)
    return (r + m.unsqueeze(-1)).scatter_(-1, ids, values.float())


def _equal_view(values: Any, indices: Any, rest: Any, num_classes: int) -> Any:
    """Rule ``equal-rest`` v1's dense view: ``m = lse - log(C - K)`` on every rest class."""
    n = num_classes - int(values.shape[-1])
    log_n = _rest_logit(n)
    if isinstance(values, np.ndarray):
        m = np.asarray(rest)[..., 0].astype(np.float32) - np.float32(log_n)
        out = np.repeat(m[..., None], num_classes, axis=-1)
        ids = np.asarray(indices).astype(np.int64)
        np.put_along_axis(out, ids, values.astype(np.float32), axis=-1)
        return out
    m = rest[..., 0].float() - log_n  # a torch tensor: the same float32 arithmetic
    out = m.unsqueeze(-1).expand(*m.shape, num_classes).contiguous()
    return out.scatter_(-1, indices.long(), values.float())


def log_probs(
    values: Any,
    indices: Any,
    rest: Any,
    num_classes: int,
    *,
    tau: float = 1.0,
    power: float = 1.0,
    profile: Any = None,
) -> Any:
    """Rebuilt log-probabilities ``[..., C]`` at temperature ``tau`` (and DiVE's power ``p``:
    ``normalize(softmax_T ** p)``), straight from the stored arrays (numpy or torch)."""
    if not (tau > 0 and power > 0):
        raise UsageError(f"Expected a temperature and a power > 0, got {tau}, {power}")
    z = dense_view(values, indices, rest, num_classes, profile) * (power / tau)
    if isinstance(z, np.ndarray):
        return z - _logsumexp(z)[..., None]
    return z.log_softmax(-1)


# --------------------------------------------------------------------------- measured error


def chunk_error(
    teacher: np.ndarray,
    values: np.ndarray,
    indices: np.ndarray,
    rest: np.ndarray,
    profile: np.ndarray | None = None,
) -> np.ndarray:
    """One row of ``topk/error`` (float32, :data:`ERROR_COLUMNS`): the KL of the rebuilt
    targets (:func:`dense_view` with ``profile``: what readers get) from the teacher's own
    logits ``[..., C]`` (float32, before any cast), mean and max over (row, view) pairs, and
    the fraction whose top-1 class is the same. In float64, a block of pairs at a time; DiVE's
    ``normalize(softmax_T ** p)`` is the softmax at ``T / p``."""
    z = np.asarray(teacher, dtype=np.float32)
    c = int(z.shape[-1])
    lead = z.shape[:-1]
    prof = None if profile is None else np.broadcast_to(profile, (*lead, c)).reshape(-1, c)
    z = z.reshape(-1, c)
    k = int(values.shape[-1])
    v, ids = np.asarray(values).reshape(-1, k), np.asarray(indices).reshape(-1, k)
    st = np.asarray(rest).reshape(len(z), -1)
    targets = [(t, 1.0) for t in ERROR_TAUS] + [DIVE]
    kl = np.zeros((len(targets), len(z)))
    step = max(1, _BLOCK // c)
    for lo in range(0, len(z), step):
        hi = min(len(z), lo + step)
        q = dense_view(v[lo:hi], ids[lo:hi], st[lo:hi], c, None if prof is None else prof[lo:hi])
        q, p = q.astype(np.float64), z[lo:hi].astype(np.float64)
        p -= p.max(-1, keepdims=True)  # shifts change no softmax; z <= 0 for every b > 0
        q -= q.max(-1, keepdims=True)
        for j, (tau, power) in enumerate(targets):
            b = power / tau
            # KL = sum_j P_j (b p_j - b q_j) - log S_p + log S_q, P = exp(b p) / S_p: two
            # exponentials per pair and target (the teacher's serves both its sum and P).
            e = np.exp(b * p)
            s_p = e.sum(-1)
            s_q = np.exp(b * q).sum(-1)
            cross = np.einsum("ij,ij->i", e, p - q) * b / s_p
            kl[j, lo:hi] = np.maximum(cross - np.log(s_p) + np.log(s_q), 0.0)  # >= 0 up to rounding
    out: list[float] = []
    for row in kl:
        out += [float(row.mean()), float(row.max())] if len(z) else [0.0, 0.0]
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
        profile=profile_mode(num_classes),
        error_columns=ERROR_COLUMNS,
        error_taus=ERROR_TAUS,
        error_dive=DIVE,
    )


def encode_chunk(
    teacher: np.ndarray, dtype: Any, k: int, profile: np.ndarray
) -> dict[str, np.ndarray]:
    """The sparse arrays of one chunk, by teacher array, from the teacher's float32 logits
    ``[rows, V, C]``: the top-k of the logits cast to the cache's ``dtype`` (so values and
    ids are those of the dense cache of that dtype), the rest's statistics, and the chunk's
    row of ``topk/error`` (``[1, M]``) under the pairs' ``profile`` (:func:`pair_profiles`).
    The cast must be finite (the caller checks)."""
    cast = np.asarray(teacher).astype(dtype)
    values, indices, rest = encode(cast, k)
    return {
        TOPK_VALUES: values,
        TOPK_INDICES: indices,
        TOPK_REST: rest,
        TOPK_ERROR: chunk_error(teacher, values, indices, rest, profile)[None],
    }


def encode_chunks(
    teacher: np.ndarray,
    dtype: Any,
    k: int,
    chunk_size: int,
    labels: np.ndarray,
    mix: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """A whole teacher ``[N, V, C]`` (float32) of rows with ``labels`` [N] (``mix``: the
    views' partner labels and lam [N, V]): its profile fitted on every pair, then
    :func:`encode_chunk` over every chunk. The row arrays ``[N, ...]``, the per-chunk error
    ``[num_chunks, M]`` and the profile, by teacher array (what
    :func:`~softlabels.stores.writer.add_teacher` takes as rows, per_chunk and static)."""
    cast = np.asarray(teacher).astype(dtype)
    partner, lam = (None, None) if mix is None else mix
    table = fit_profile(cast, k, labels, partner, lam)
    parts = []
    for start in range(0, len(teacher), chunk_size):
        at = slice(start, start + chunk_size)
        prof = pair_profiles(
            table,
            np.asarray(labels)[at, None],
            None if partner is None else partner[at],
            None if lam is None else lam[at],
        )
        parts.append(encode_chunk(teacher[at], dtype, k, prof))
    rows = {
        w: np.concatenate([p[w] for p in parts]) for w in (TOPK_VALUES, TOPK_INDICES, TOPK_REST)
    }
    return rows, {TOPK_ERROR: np.concatenate([p[TOPK_ERROR] for p in parts])}, {TOPK_PROFILE: table}
