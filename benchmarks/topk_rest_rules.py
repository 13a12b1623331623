"""Top-k rest rules: which statistics of the C - K logits outside the top K keep the dark
knowledge (analysis only: no library code changes, nothing written to any cache).

    OMP_NUM_THREADS=1 python benchmarks/topk_rest_rules.py \
        --cache /work/runs/measure/sparse/seed0/cache-dense.slc --json rules.json
    python benchmarks/topk_rest_rules.py --cache ... --quick     # K = 10, 2,000 samples
    python benchmarks/topk_rest_rules.py --cache ... --write-cache OUT.slc --rule label+std \
        --ks 10 --teachers ce bsce     # a dense copy with teachers <name>_rebuilt, for distill

On the dense float16 logits of a cache's teachers (every (sample, view) pair), each rule
keeps the K largest logits, their ids and ``lse = logsumexp`` of the other C - K logits,
exactly as ``dump --topk K`` stores them (``softlabels.stores.topk.encode``), and rebuilds
the C - K rest logits as ``r_c = m + a * prof_c`` with ``m`` solved per (row, view) so that
``logsumexp(r) = lse`` exactly (every rule is exact at T = 1 in total mass):

* ``equal``: ``prof = 0`` (today's ``equal-rest`` version 1; its dense view is
  ``softlabels.stores.topk.dense_view``).
* ``class``: ``prof_c = b_c``, one profile per teacher: the mean over (row, view) pairs where
  c is in the rest of ``z_c - mean(rest of that row)``. C floats per teacher.
* ``class+std``: ``class`` with the per-(row, view) scale of ``label+std`` below (the
  fallback when C x C floats are too many).
* ``label``: ``prof_c = b_{y,c}``, one profile per label y (same mean, over the rows of label
  y; ``b_c`` where no row of label y has c in its rest). C x C floats per teacher.
* ``label+std``: ``label`` with a per-(row, view) scale ``a = std(rest z) / std(rest prof)``
  (one more float32 per view: the rest's std).
* ``label+lse2``: ``label`` with ``a >= 0`` solved (bisection) so that the rebuilt rest's
  logsumexp at T = 2 equals the stored ``lse2 = logsumexp(rest z / 2)`` (one more float32
  per view).

The profiles are fitted on one half of the samples (all their views; a fixed permutation,
``--split-seed``) and every figure is measured on the other half. Figures per teacher and
K: KL(softmax_T(dense) || rebuilt_T), mean and 99th percentile over the evaluation (row,
view) pairs, for T in 1, 2, 3, 4, 8 and DiVE's target at T = 3.25, p = 0.5 (softmax of z p /
T); and the virtual-example tail/head ratio tune-tau uses (``softlabels.analysis.virtual``:
its row reduction, groups, flatness and choice, on the evaluation half, for the default
grid T = 1 ... 10 step 0.5, p in {1, 0.5}), with the grid point tune-tau would pick.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from typing import Any

import numpy as np
import torch

from softlabels.analysis.virtual import (
    DEFAULT_POWERS,
    DEFAULT_TAUS,
    _grid,
    _group_setup,
    _reduce_rows,
    choose,
    flatness,
)
from softlabels.caches import open_cache
from softlabels.stores.topk import encode

RULES = ("equal", "class", "class+std", "label", "label+std", "label+lse2")
TARGETS: tuple[tuple[str, float, float], ...] = (
    ("T1", 1.0, 1.0),
    ("T2", 2.0, 1.0),
    ("T3", 3.0, 1.0),
    ("T4", 4.0, 1.0),
    ("T8", 8.0, 1.0),
    ("dive", 3.25, 0.5),
)
REPORT_TAU_EFFS = (2.0, 4.0, 6.5, 10.0, 20.0)


def _lse(x: np.ndarray, axis: int = -1) -> np.ndarray:
    top = np.max(x, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        return (top + np.log(np.exp(x - top).sum(axis, keepdims=True))).squeeze(axis)


def load(cache_path: str, teachers: list[str]) -> tuple[dict[str, np.ndarray], np.ndarray, Any]:
    """Dense logits [N, V, C] (stored dtype) per teacher, labels [N], the cache."""
    cache = open_cache(cache_path)
    logits = {}
    for name in teachers:
        parts = [chunk for _s, _e, chunk in cache.teacher(name).dense_chunks()]
        logits[name] = np.concatenate(parts)
    return logits, np.asarray(cache.labels, dtype=np.int64), cache


# --------------------------------------------------------------------------- rules


def rest_mask(ids: np.ndarray, c: int) -> np.ndarray:
    mask = np.ones((len(ids), c), dtype=bool)
    np.put_along_axis(mask, ids.astype(np.int64), False, axis=-1)
    return mask


def fit_profiles(z: np.ndarray, ids: np.ndarray, y: np.ndarray, c: int) -> dict[str, np.ndarray]:
    """``class`` [C] and ``label`` [C, C] profiles from (row, view) pairs z [M, C] (float64)."""
    rest = rest_mask(ids, c)
    n = rest.sum(-1, keepdims=True)
    mu = (z * rest).sum(-1, keepdims=True) / n
    d = np.where(rest, z - mu, 0.0)
    count = rest.sum(0).astype(np.float64)
    b = np.divide(d.sum(0), count, out=np.zeros(c), where=count > 0)
    sums = np.zeros((c, c))
    counts = np.zeros((c, c))
    np.add.at(sums, y, d)
    np.add.at(counts, y, rest.astype(np.float64))
    by = np.where(counts > 0, sums / np.maximum(counts, 1), b[None, :])
    return {"class": b, "label": by}


def _solve_m(prof: np.ndarray, rest: np.ndarray, lse: np.ndarray) -> np.ndarray:
    """m per row with logsumexp over the rest of (m + prof) = lse."""
    masked = np.where(rest, prof, -np.inf)
    return lse - _lse(masked)


def _scale_lse2(
    prof: np.ndarray, rest: np.ndarray, lse: np.ndarray, lse2: np.ndarray
) -> np.ndarray:
    """a >= 0 per row with logsumexp(rest (m(a) + a prof) / 2) = lse2 (bisection, 50 steps).

    h(a) = LSE(a prof / 2) - LSE(a prof) / 2 + lse / 2 decreases in a (it is half the Renyi-1/2
    entropy of softmax(a prof) plus a constant), from lse / 2 + log(n) / 2 at a = 0."""
    masked = np.where(rest, prof, -np.inf)

    def h(a: np.ndarray) -> np.ndarray:
        x = masked * a[:, None]
        x = np.where(rest, x, -np.inf)
        return _lse(x / 2) - _lse(x) / 2 + lse / 2

    lo = np.zeros(len(prof))
    hi = np.full(len(prof), 1.0)
    for _ in range(8):  # grow hi until h(hi) <= lse2 (or 2**8)
        grow = h(hi) > lse2
        hi = np.where(grow, hi * 2, hi)
    for _ in range(50):
        mid = (lo + hi) / 2
        above = h(mid) > lse2  # still too flat: more spread
        lo = np.where(above, mid, lo)
        hi = np.where(above, hi, mid)
    return (lo + hi) / 2


def rebuild(
    rule: str,
    values: np.ndarray,
    ids: np.ndarray,
    stats: dict[str, np.ndarray],
    y: np.ndarray,
    profiles: dict[str, np.ndarray],
    c: int,
) -> np.ndarray:
    """Dense rebuilt logits [M, C] float64 of one rule."""
    rest = rest_mask(ids, c)
    m_rows = len(values)
    base = rule.split("+")[0]
    if base == "equal":
        prof = np.zeros((m_rows, c))
    elif base == "class":
        prof = np.broadcast_to(profiles["class"], (m_rows, c)).copy()
    else:
        prof = profiles["label"][y].copy()
    lse = stats["lse"]
    if rule.endswith("+std"):
        p_rest = np.where(rest, prof, np.nan)
        sd = np.nanstd(p_rest, axis=-1)
        a = np.where(sd > 0, stats["std"] / np.where(sd > 0, sd, 1.0), 1.0)
        prof = prof * a[:, None]
    elif rule == "label+lse2":
        a = _scale_lse2(prof, rest, lse, stats["lse2"])
        prof = prof * a[:, None]
    out = np.where(rest, _solve_m(prof, rest, lse)[:, None] + prof, 0.0)
    np.put_along_axis(out, ids.astype(np.int64), values.astype(np.float64), axis=-1)
    return out


def rest_stats(z: np.ndarray, ids: np.ndarray, c: int, lse32: np.ndarray) -> dict[str, np.ndarray]:
    """What each rule stores about the rest, per (row, view), rounded to float32."""
    rest = rest_mask(ids, c)
    masked = np.where(rest, z, -np.inf)
    zr = np.where(rest, z, np.nan)
    return {
        "lse": lse32.astype(np.float64),
        "std": np.nanstd(zr, axis=-1).astype(np.float32).astype(np.float64),
        "lse2": _lse(masked / 2).astype(np.float32).astype(np.float64),
    }


# --------------------------------------------------------------------------- figures


def kl_figures(dense: np.ndarray, rebuilt: np.ndarray) -> dict[str, dict[str, float]]:
    out = {}
    for name, tau, power in TARGETS:
        b = power / tau
        lp = dense * b
        lp = lp - _lse(lp)[:, None]
        lq = rebuilt * b
        lq = lq - _lse(lq)[:, None]
        kl = np.maximum((np.exp(lp) * (lp - lq)).sum(-1), 0.0)
        out[name] = {"mean": float(kl.mean()), "p99": float(np.quantile(kl, 0.99))}
    return out


def tail_head(rows: np.ndarray, views: int, train_counts: np.ndarray) -> dict[str, Any]:
    """tune-tau's virtual examples of rows [M, C] (M = samples x views, sample-major)."""
    grid = _grid(DEFAULT_TAUS, DEFAULT_POWERS)
    tau_effs = sorted({te for _t, _p, te in grid})
    x = np.ascontiguousarray(rows.astype(np.float32))
    with torch.no_grad():
        sums = _reduce_rows(x, 0, len(x), [1.0 / t for t in tau_effs], 1024, torch.device("cpu"))
    v = sums.double().numpy() / views
    _d, groups, names, _note = _group_setup(train_counts, "auto")
    figs = [flatness(v[k], groups, names) for k in range(len(tau_effs))]
    ratios = [f["ratio_tail_head"] for f in figs]
    pick = choose(tau_effs, ratios, [f["entropy"] for f in figs])
    at = {f"{te:g}": r for te, r in zip(tau_effs, ratios, strict=True) if te in REPORT_TAU_EFFS}
    return {
        "ratio_at": at,
        "choice_tau_eff": pick.tau_eff,
        "choice": [pick.tau, pick.power],
        "reached": pick.reached,
        "ratio_at_choice": pick.ratio_tail_head,
    }


def storage(rule: str, k: int, c: int, value_bytes: int) -> dict[str, int]:
    """Bytes per (row, view) and per teacher (shared) of a rule, float32 statistics."""
    idx = 2 if c <= 65_536 else 4
    per_view = k * (value_bytes + idx) + 4
    if rule.endswith(("+std", "+lse2")):
        per_view += 4
    shared = {"equal": 0, "class": 4 * c}.get(rule.split("+")[0], 4 * c * c + 4 * c)
    return {"per_view": per_view, "per_teacher": shared}


# --------------------------------------------------------------------------- driver


def run(args: argparse.Namespace) -> dict[str, Any]:
    logits, labels, cache = load(args.cache, args.teachers)
    n, v, c = next(iter(logits.values())).shape
    train = cache.dataset.train_counts
    train_counts = np.asarray(train if train is not None else np.bincount(labels, minlength=c))
    rng = np.random.default_rng(args.split_seed)
    perm = rng.permutation(n)
    if args.quick:
        perm = perm[: 2 * min(n // 2, 1000)]
    fit_s, eval_s = np.sort(perm[: len(perm) // 2]), np.sort(perm[len(perm) // 2 :])
    value_bytes = next(iter(logits.values())).dtype.itemsize
    result: dict[str, Any] = {
        "cache": args.cache,
        "N": n,
        "V": v,
        "C": c,
        "fit_samples": len(fit_s),
        "eval_samples": len(eval_s),
        "split_seed": args.split_seed,
        "ks": args.ks,
        "teachers": {},
    }
    for name in args.teachers:
        z16 = logits[name]
        z_fit = z16[fit_s].reshape(-1, c).astype(np.float64)
        z_ev = z16[eval_s].reshape(-1, c).astype(np.float64)
        y_fit = np.repeat(labels[fit_s], v)
        y_ev = np.repeat(labels[eval_s], v)
        per_t: dict[str, Any] = {
            "dense": {
                "tail_head": tail_head(z_ev, v, train_counts),
                "bytes_per_view": c * value_bytes,
            }
        }
        if args.full_check:
            per_t["dense"]["tail_head_all_rows"] = tail_head(
                z16.reshape(-1, c).astype(np.float64), v, train_counts
            )
        for k in args.ks:
            t0 = time.perf_counter()
            _vf, ids_fit, _rf = encode(z16[fit_s].reshape(-1, c), k)
            vals, ids, rest32 = encode(z16[eval_s].reshape(-1, c), k)
            profiles = fit_profiles(z_fit, ids_fit, y_fit, c)
            stats = rest_stats(z_ev, ids, c, rest32[:, 0])
            rows: dict[str, Any] = {}
            for rule in RULES:
                rebuilt = rebuild(rule, vals, ids, stats, y_ev, profiles, c)
                rows[rule] = {
                    "kl": kl_figures(z_ev, rebuilt),
                    "tail_head": tail_head(rebuilt, v, train_counts),
                    "bytes": storage(rule, k, c, value_bytes),
                }
                if args.full_check and rule == "equal" and k == 10:
                    va, ia, ra = encode(z16.reshape(-1, c), k)
                    full = rebuild(
                        "equal", va, ia, {"lse": ra[:, 0].astype(np.float64)}, None, {}, c
                    )
                    rows[rule]["tail_head_all_rows"] = tail_head(full, v, train_counts)
            per_t[f"k{k}"] = rows
            print(f"# {name} K={k}: {time.perf_counter() - t0:.1f} s", flush=True)
        result["teachers"][name] = per_t
    return result


def write_cache(args: argparse.Namespace) -> None:
    """A copy of the dense cache whose teachers' logits are replaced by a rule's rebuild at K
    (profiles fitted on every row, as a dump would), float16: for a student check with
    ``softlabels distill``: teacher ``<name>_rebuilt`` beside each original ``<name>``)."""
    import shutil

    from softlabels.stores.schema import LOGITS
    from softlabels.stores.writer import add_teacher

    logits, labels, cache = load(args.cache, args.teachers)
    n, v, c = next(iter(logits.values())).shape
    shutil.copytree(args.cache, args.write_cache)
    k = args.ks[0]
    for name in args.teachers:
        z16 = logits[name]
        flat = z16.reshape(-1, c)
        z = flat.astype(np.float64)
        y = np.repeat(labels, v)
        vals, ids, rest32 = encode(flat, k)
        profiles = fit_profiles(z, ids, y, c)
        stats = rest_stats(z, ids, c, rest32[:, 0])
        rebuilt = rebuild(args.rule, vals, ids, stats, y, profiles, c).astype(z16.dtype)
        info = cache.teacher(name).info
        # A new teacher beside the original (the dump's chunk records cover the originals).
        new = f"{name}_rebuilt"
        add_teacher(args.write_cache, new, info, {LOGITS: rebuilt.reshape(n, v, c)})
        print(f"# wrote {new}: rule {args.rule}, K = {k} -> {args.write_cache}", flush=True)


def _f(x: float) -> str:
    return f"{x:.4f}" if x < 10 else f"{x:.2f}"


def markdown(res: dict[str, Any]) -> str:
    lines: list[str] = []
    c = res["C"]
    lines.append(
        f"Fit on {res['fit_samples']:,} samples, evaluated on the other {res['eval_samples']:,} "
        f"(x {res['V']} views), C = {c}."
    )
    lines.append("")
    lines.append("KL(softmax_T(dense) || rebuilt_T) on the evaluation half, mean / p99:")
    lines.append("")
    head = "| teacher | K | rule | " + " | ".join(t[0] for t in TARGETS) + " |"
    lines += [head, "|---" * (3 + len(TARGETS)) + "|"]
    for name, per_t in res["teachers"].items():
        for k in res["ks"]:
            for rule, row in per_t[f"k{k}"].items():
                cells = [
                    f"{_f(row['kl'][t]['mean'])} / {_f(row['kl'][t]['p99'])}" for t, *_ in TARGETS
                ]
                lines.append(f"| {name} | {k} | {rule} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Virtual-example tail/head (tune-tau's statistic, evaluation half) at T/p, and the grid "
        "point tune-tau would choose (T/p; * = target tail/head >= 1 not reached):"
    )
    lines.append("")
    taus = [f"{t:g}" for t in REPORT_TAU_EFFS]
    lines += [
        "| teacher | K | rule | " + " | ".join(f"T/p={t}" for t in taus) + " | choice T/p |",
        "|---" * (4 + len(taus)) + "|",
    ]
    for name, per_t in res["teachers"].items():
        items = [("dense", "-", per_t["dense"]["tail_head"])]
        for k in res["ks"]:
            items += [(rule, k, row["tail_head"]) for rule, row in per_t[f"k{k}"].items()]
        for rule, k, th in items:
            cells = [f"{th['ratio_at'][t]:.3f}" for t in taus]
            ch = f"{th['choice_tau_eff']:g}" + ("" if th["reached"] else "*")
            lines.append(f"| {name} | {k} | {rule} | " + " | ".join(cells) + f" | {ch} |")
    lines.append("")
    lines.append("Storage (float16 values, uint16 ids, float32 statistics):")
    lines.append("")
    lines += ["| K | rule | bytes per view | bytes per teacher (shared) |", "|---|---|---|---|"]
    some = next(iter(res["teachers"].values()))
    lines.append(f"| - | dense | {some['dense']['bytes_per_view']} | 0 |")
    for k in res["ks"]:
        for rule, row in some[f"k{k}"].items():
            b = row["bytes"]
            lines.append(f"| {k} | {rule} | {b['per_view']} | {b['per_teacher']:,} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", default="/work/runs/measure/sparse/seed0/cache-dense.slc")
    p.add_argument("--teachers", nargs="+", default=["ce", "bsce"])
    p.add_argument("--ks", nargs="+", type=int, default=[5, 10, 20])
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="K = 10 and 2,000 samples only")
    p.add_argument("--full-check", action="store_true", help="also dense/equal K=10 on all rows")
    p.add_argument("--json", default=None)
    p.add_argument("--write-cache", default=None, help="write a rebuilt dense copy here and stop")
    p.add_argument("--rule", choices=RULES, default="label", help="the rule --write-cache uses")
    args = p.parse_args()
    if args.write_cache:
        write_cache(args)
        return
    if args.quick:
        args.ks = [10]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    t0 = time.perf_counter()
    res = run(args)
    res["seconds"] = time.perf_counter() - t0
    res["machine"] = platform.platform()
    print(markdown(res))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=1, default=lambda x: None if not math.isfinite(x) else x)
    print(f"# {res['seconds']:.1f} s")


if __name__ == "__main__":
    main()
