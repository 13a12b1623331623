"""Benchmark of sparse teacher outputs (``dump --topk K``): bytes per view and the error of
the rebuild rule, and the measurement that chose the rule (METHODS §12).

    python benchmarks/bench_topk.py                       # everything below, ~5 min on 2 CPUs
    python benchmarks/bench_topk.py --json out.json

Three parts:

* ``c100``: a cnn1d teacher trained (CE, 12 epochs) on a 100-class long-tailed synthetic 1-D
  dataset (``benchmarks/synthetic_signals.py``, imb = 100: 10,847 training rows), dumped
  dense (float16) and with ``--topk K`` for K in 1, 5, 10, 20, features off (logits only):
  bytes per view of the logit arrays on disk (the chunk files the manifest lists; the rest
  profile, stored once per teacher, apart), and the error each sparse dump recorded
  (``inspect``'s summary: KL(softmax_T(teacher) || rebuilt_T), mean over views and max, T =
  1, 2, 4, 8 and DiVE's T = 3, p = 0.5).
* ``inat``: an iNaturalist-shaped cache (C = 8,142, N = 4,096 rows, chunks of 1,024),
  written with the store layer from synthetic logits (a long-tailed label profile, logits
  ``0.5 log prior_c + 1.5 N(0, 1) + 10 [c = label]``: the label gets 0.60 of the mass
  on average, the top 20 classes 0.65, the other 8,122 the rest), dense float16 and top-k as
  a dump writes it: the rest profile fitted first (``stores.topk.ProfileFit`` over the
  float16 logits of the dump's fit chunks, here all four; C > 4,096: one all-label profile,
  mode "class", ``[1, C]``), stored whole, then every chunk encoded by the dump's own
  encoder (``softlabels.stores.topk.encode_chunk`` with the pairs' profiles): bytes per
  view, recorded error, the encoder's time per chunk (what a dump adds per chunk on the
  CPU) and the fit's.
* ``rules``: the historical measurement behind the first rule, ``equal-rest`` v1: candidate
  rebuild rules on the float32 logits of the c100 teacher and of a cnn1d trained on
  MNIST-1D-LT (C = 10), mean KL(softmax_T(teacher) || rebuilt_T). Every candidate keeps the
  K logits and spreads the rest's mass evenly over the other C - K classes; they differ in
  the rest's mass at T: ``equal-rest`` (C - K equal logits, exact at T = 1), ``rest-max``
  (also the (K+1)-th logit: one rest logit at it, the others equal), ``lse-t2`` (also the
  rest's log-sum-exp at T = 2: log-mass quadratic in 1/T through 1/T = 0, 1/2, 1), and
  ``oracle`` (the exact rest mass at every T: the floor of any rule that spreads the rest
  evenly). The stored rule is now ``label-profile`` v2 (``stores/topk.py``), which shapes
  the rest instead of spreading it evenly: its measurement is ``benchmarks/RESULTS.md``,
  "Top-k rest rules" (``benchmarks/topk_rest_rules.py``); the ``c100`` and ``inat`` errors
  above are v2's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the py: dataset synthetic_signals

KS = (1, 5, 10, 20)
C100 = "py:synthetic_signals:signals:classes=100"
MNIST = "mnist1d-lt:imb=100"
TAUS = (1.0, 2.0, 4.0, 8.0)


# --------------------------------------------------------------------------- helpers


def _train(dataset: str, out: Path, epochs: int) -> str:
    from softlabels.engine.optim import OptimConfig
    from softlabels.teachers.train import TrainConfig, train

    model = out / "model.pt"
    if not model.exists():
        cfg = TrainConfig(
            dataset=dataset, model="cnn1d", loss="ce", augment="none", epochs=epochs,
            batch_size=64, optim=OptimConfig(lr=0.05),
        )  # fmt: skip
        result = train(cfg, out, device="cpu")
        print(f"  trained {dataset}: top-1 {result.metrics['top1']:.3f}", file=sys.stderr)
    return str(model)


def _dump(dataset: str, model: str, out: Path, **kw: Any) -> tuple[Any, float]:
    from softlabels.teachers import DumpConfig, TeacherSpec, dump

    cfg = DumpConfig(dataset=dataset, teachers=(TeacherSpec("t", model),), features=False, **kw)
    t0 = time.perf_counter()
    dump(cfg, str(out), device="cpu", overwrite=True)
    return out, time.perf_counter() - t0


def _chunk_bytes(cache: Any, paths: list[str]) -> int:
    """Bytes of the committed chunk files of ``paths`` (metadata documents not counted)."""
    return sum(e.nbytes for p in paths for e in cache.manifest.committed(p).values())


def _logit_paths(cache: Any, name: str) -> dict[str, list[str]]:
    from softlabels.stores import schema

    t = cache.teacher(name)
    if not t.info.sparse:
        return {"logits": [schema.teacher_array(name, schema.LOGITS)]}
    rows = [schema.TOPK_VALUES, schema.TOPK_INDICES, schema.TOPK_REST]
    return {
        "logits": [schema.teacher_array(name, w) for w in rows],
        "error": [schema.teacher_array(name, schema.TOPK_ERROR)],
    }


def _static_bytes(cache: Any, path: str) -> int:
    """Bytes of the committed file of an array stored whole."""
    entry = cache.manifest.entry(path)
    return 0 if entry is None else int(entry.nbytes)


def _row(cache: Any, name: str, k: int | None, seconds: float | None = None) -> dict[str, Any]:
    from softlabels.stores import schema

    views = cache.num_samples * cache.num_views
    paths = _logit_paths(cache, name)
    out: dict[str, Any] = {
        "k": k,
        "bytes_per_view": _chunk_bytes(cache, paths["logits"]) / views,
        "error_bytes_per_view": _chunk_bytes(cache, paths.get("error", [])) / views,
    }
    if cache.teacher(name).info.sparse:  # the rest profile, stored once per teacher
        out["profile_bytes"] = _static_bytes(cache, schema.teacher_array(name, schema.TOPK_PROFILE))
        out["profile_bytes_per_view"] = out["profile_bytes"] / views
    if seconds is not None:
        out["dump_seconds"] = round(seconds, 2)
    err = cache.teacher(name).topk_error()
    if err is not None:
        out["error"] = err["summary"]
    return out


def _by_k(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """The headline figures of a part's rows by K ("dense", "1", ...), for the runner's
    table (``run_all.py`` shows dotted keys of dicts, not of lists)."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        fig = {"bytes_per_view": row["bytes_per_view"]}
        fig |= (
            {c: row["error"][c] for c in ("kl_mean_t4", "kl_mean_dive")} if "error" in row else {}
        )
        out["dense" if row["k"] is None else str(row["k"])] = fig
    return out


# --------------------------------------------------------------------------- c100


def bench_c100(work: Path) -> tuple[dict[str, Any], str]:
    from softlabels import open_cache

    model = _train(C100, work / "teacher-c100", epochs=12)
    rows = []
    dense, secs = _dump(C100, model, work / "c100-dense.slc")
    rows.append(_row(open_cache(str(dense)), "t", None, secs))
    for k in KS:
        path, secs = _dump(C100, model, work / f"c100-k{k}.slc", topk=k)
        rows.append(_row(open_cache(str(path)), "t", k, secs))
    cache = open_cache(str(dense))
    part = {"N": cache.num_samples, "C": cache.num_classes, "V": 1, "rows": rows}
    return part | {"by_k": _by_k(rows)}, model


# --------------------------------------------------------------------------- inat


def _inat_logits(rng: np.random.Generator, labels: np.ndarray, prior: np.ndarray) -> np.ndarray:
    z = 0.5 * np.log(prior)[None, :] + 1.5 * rng.standard_normal((len(labels), len(prior)))
    z[np.arange(len(labels)), labels] += 10.0
    return z.astype(np.float32)[:, None, :]  # [rows, V = 1, C]


def bench_inat(work: Path, n: int = 4096, c: int = 8142, chunk: int = 1024) -> dict[str, Any]:
    from _synthetic import fit_rest_profile, profile_fit_chunks, topk_specs

    from softlabels import open_cache
    from softlabels.stores import schema
    from softlabels.stores import topk as T
    from softlabels.stores.writer import ArraySpec, CacheWriter

    counts = np.maximum(1, (500 * (1 / 500) ** (np.arange(c) / (c - 1)))).astype(np.int64)
    prior = counts / counts.sum()
    labels = np.random.default_rng(0).choice(c, size=n, p=prior).astype(np.int32)
    rng = np.random.default_rng(1)  # the same logits for every K, generated once (float32)
    bounds = [(s, min(n, s + chunk)) for s in range(0, n, chunk)]
    logits = [_inat_logits(rng, labels[s:e], prior) for s, e in bounds]
    rows = []
    for k in (None, *KS):
        url = work / f"inat-{'dense' if k is None else f'k{k}'}.slc"
        shutil.rmtree(url, ignore_errors=True)
        info = schema.TeacherInfo(
            dtype="float16",
            storage="dense" if k is None else "topk",
            topk=None if k is None else T.topk_info(k, c),
        )
        meta = schema.CacheMeta(
            format=schema.format_for({"t": info}), N=n, C=c, V=1, chunk_size=chunk,
            config_key=f"bench-topk-{k}", dataset=schema.DatasetInfo(fingerprint="0" * 64),
            class_names=[f"c{i}" for i in range(c)], teachers={"t": info},
        )  # fmt: skip
        specs = [
            ArraySpec(schema.LABELS, (n,), "int32"),
            ArraySpec(schema.VIEW_SEEDS, (n, 1), "uint64"),
        ]
        statics: dict[str, np.ndarray] = {}
        fit_s = 0.0
        if info.topk is None:
            specs.append(ArraySpec(schema.teacher_array("t", schema.LOGITS), (n, 1, c), "float16"))
        else:
            specs += topk_specs(info.topk, n=n, v=1, c=c, chunk=chunk, dtype="float16")
            # The rest profile first, as a dump fits it (on its fit chunks: all of them here),
            # so every chunk's recorded error is that of the targets readers rebuild.
            fit_ids = profile_fit_chunks(len(bounds), chunk, 1, c)
            t0 = time.perf_counter()
            table = fit_rest_profile(
                ((logits[i], labels[slice(*bounds[i])]) for i in fit_ids),
                c,
                info.topk.k,
                np.float16,
            )
            fit_s = time.perf_counter() - t0
            statics[schema.teacher_array("t", schema.TOPK_PROFILE)] = table
        tables = {
            schema.SAMPLES_TABLE: schema.samples_table([str(i) for i in range(n)], labels, "train"),
            schema.CLASSES_TABLE: schema.classes_table(meta.class_names, counts, ["few"] * c),
        }
        encode_s: list[float] = []
        with CacheWriter.open(str(url), meta=meta, specs=specs, tables=tables) as w:
            w.write_static(statics)
            for ch in w.pending_chunks():
                s, e = w.rows(ch)
                z = logits[ch]
                data = {
                    schema.LABELS: labels[s:e],
                    schema.VIEW_SEEDS: np.zeros((e - s, 1), np.uint64),
                }
                if k is None:
                    data[schema.teacher_array("t", schema.LOGITS)] = z.astype(np.float16)
                else:
                    t0 = time.perf_counter()
                    prof = T.pair_profiles(table, labels[s:e, None])
                    enc = T.encode_chunk(z, np.float16, k, prof)
                    encode_s.append(time.perf_counter() - t0)
                    data |= {schema.teacher_array("t", a): v for a, v in enc.items()}
                w.write_chunk(ch, data)
        row = _row(open_cache(str(url)), "t", k)
        if encode_s:
            row["encode_seconds_per_chunk"] = round(float(np.mean(encode_s)), 3)
            row["profile_fit_seconds_per_chunk"] = round(fit_s / len(fit_ids), 3)
            row["profile_fit_chunks"] = len(fit_ids)
        rows.append(row)
    return {"N": n, "C": c, "V": 1, "chunk_size": chunk, "rows": rows, "by_k": _by_k(rows)}


# --------------------------------------------------------------------------- rules


def _lse(x: np.ndarray) -> np.ndarray:
    m = x.max(-1, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(-1, keepdims=True)))[..., 0]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    return x - _lse(x)[..., None]


def _rule_errors(z: np.ndarray, k: int) -> dict[str, dict[str, float]]:
    """Mean KL(softmax_T(z) || rebuilt_T) of each candidate rule, by rule and target."""
    z = z.reshape(-1, z.shape[-1]).astype(np.float64)
    n = z.shape[1] - k
    order = np.argsort(-z, axis=1, kind="stable")
    top = np.take_along_axis(z, order[:, :k], 1)
    rest = np.take_along_axis(z, order[:, k:], 1)
    lse1, lse2, zmax = _lse(rest), _lse(rest / 2), rest[:, 0]
    out: dict[str, dict[str, float]] = {}
    for tau, power in [(t, 1.0) for t in TAUS] + [(3.0, 0.5)]:
        b = power / tau  # normalize(softmax_T ** p) = softmax at T / p
        lp = _log_softmax(z * b)
        mass = {  # log sum over the rest of exp(b z), as each rule models it
            "equal-rest": math.log(n) + b * (lse1 - math.log(n)),
            "rest-max": (
                np.logaddexp(b * zmax, math.log(n - 1) + b * (np.log(np.maximum(np.exp(lse1) - np.exp(zmax), 1e-300)) - math.log(n - 1)))
                if n > 1 else b * zmax
            ),
            "lse-t2": (
                math.log(n) + (lse1 - math.log(n) - 2 * (lse1 - 2 * lse2 + math.log(n))) * b
                + 2 * (lse1 - 2 * lse2 + math.log(n)) * b * b
            ),
            "oracle": _lse(rest * b),
        }  # fmt: skip
        tag = f"t{tau:g}" if power == 1.0 else "dive"
        for rule, a in mass.items():
            logz = np.logaddexp(_lse(top * b), a)
            lq_top = top * b - logz[:, None]
            lq_rest = (a - math.log(n) - logz)[:, None]
            lp_top = np.take_along_axis(lp, order[:, :k], 1)
            lp_rest = np.take_along_axis(lp, order[:, k:], 1)
            kl = (np.exp(lp_top) * (lp_top - lq_top)).sum(1)
            kl += (np.exp(lp_rest) * (lp_rest - lq_rest)).sum(1)
            out.setdefault(rule, {})[tag] = float(kl.mean())
    return out


def bench_rules(work: Path, c100_model: str) -> dict[str, Any]:
    from softlabels import open_cache
    from softlabels.stores import schema

    out: dict[str, Any] = {}
    mnist_model = _train(MNIST, work / "teacher-mnist", epochs=15)
    for name, dataset, model, ks in (
        ("c100", C100, c100_model, KS),
        ("mnist1d", MNIST, mnist_model, (1, 2, 5)),
    ):
        path, _ = _dump(dataset, model, work / f"{name}-f32.slc", dtype="float32")
        z = open_cache(str(path)).teacher("t").reader(schema.LOGITS).read_all()
        out[name] = {str(k): _rule_errors(z, k) for k in ks}
    return out


# --------------------------------------------------------------------------- report


def _fmt(x: float) -> str:
    return f"{x:.2e}" if x < 0.01 else f"{x:.3f}"


def markdown(results: dict[str, Any]) -> str:
    lines: list[str] = []
    cols = ("t1", "t2", "t4", "t8", "dive")
    head = (
        "| K | B/view | profile B | "
        + " | ".join(f"KL {c} mean / max" for c in cols)
        + " | top-1 |"
    )
    for part in ("c100", "inat"):
        if part not in results:
            continue
        r = results[part]
        lines += [
            "",
            f"{part}: N = {r['N']}, C = {r['C']}, V = 1",
            "",
            head,
            "|" + " --- |" * (len(cols) + 4),
        ]
        for row in r["rows"]:
            e = row.get("error")
            errs = (
                [f"{_fmt(e[f'kl_mean_{c}'])} / {_fmt(e[f'kl_max_{c}'])}" for c in cols]
                if e
                else ["-"] * len(cols)
            )
            top1 = f"{100 * e['top1_agreement']:.2f} %" if e else "-"
            k = "dense" if row["k"] is None else str(row["k"])
            prof = f"{row['profile_bytes']:,}" if "profile_bytes" in row else "-"
            lines.append(
                f"| {k} | {row['bytes_per_view']:.1f} | {prof} | "
                + " | ".join(errs)
                + f" | {top1} |"
            )
    for name, by_k in results.get("rules", {}).items():
        lines += ["", f"rules on {name}: mean KL(softmax_T(teacher) || rebuilt_T)", "",
                  "| K | rule | " + " | ".join(cols) + " |", "|" + " --- |" * (len(cols) + 2)]  # fmt: skip
        for k, rules in by_k.items():
            for rule, errs in rules.items():
                lines.append(f"| {k} | {rule} | " + " | ".join(_fmt(errs[c]) for c in cols) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", help="scratch folder (default: a temp folder, removed)")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--parts", default="c100,inat,rules")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-topk-"))
    work.mkdir(parents=True, exist_ok=True)
    parts = set(args.parts.split(","))
    results: dict[str, Any] = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs"}
    try:
        model = ""
        if "c100" in parts or "rules" in parts:
            results["c100"], model = bench_c100(work)
        if "inat" in parts:
            results["inat"] = bench_inat(work)
        if "rules" in parts:
            results["rules"] = bench_rules(work, model)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(markdown(results))
    print(json.dumps(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
