"""Sparse against dense teacher caches on the 100-class bed: the same students from both.

    .venv/bin/python benchmarks/sparse_vs_dense.py --seeds 0 1 2 --topk 10 \\
        --teachers-root /work/runs/testbed --wait --out /tmp/sparse-dense
    .venv/bin/python benchmarks/sparse_vs_dense.py --quick      # smoke run, about a minute

Per seed s, each step a `softlabels` subprocess (as ``testbed_table.py``):

1. the CE and BSCE teachers: ``TEACHERS_ROOT/seed{s}/teacher-{ce,bsce}/model.pt`` when
   ``--teachers-root`` is given (a seed is taken once both have their ``metrics.parquet``,
   the last file `train` writes; ``--wait`` polls for it), else trained here (resnet1d,
   the test bed's flags);
2. one ``dump`` per cache kind: dense (float16) and ``--topk K`` for each K, all with the
   same ``--views`` epoch-aligned views and view seed s (so the only difference is K);
3. ``tune-tau`` on the BSCE teacher of each cache (its choice is the ``tau = "auto"``
   student's and is compared across kinds: grid steps apart in T/p);
4. ``distill`` of the KD, DiVE (auto and T = 3 / p = 0.5) and BKD students of
   ``benchmarks/testbed_plan.toml`` (cnn1d, same seeds) from each cache, ``--jobs``
   caches at a time.

Prints a Markdown table per cache kind (mean ± sd over seeds, %), the per-seed dense minus
sparse differences, tune-tau's choices, and writes everything to ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _table import markdown_table, seed_run
from testbed_table import FULL, QUICK, ROOT, TEACHER_MODEL, TEACHERS, Runner, _metrics, _toml

from softlabels.reports import aggregate

STUDENTS = ("kd", "dive-auto", "dive-t3", "bkd")  # names in the plan
DIFF_KEYS = ("top1", "many", "medium", "few", "ece")


def kind_name(k: int) -> str:
    return "dense" if k == 0 else f"top-{k}"


def cache_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def teachers_for(seed: int, out: Path, cfg: dict[str, Any], run: Runner, root: Path | None,
                 wait: bool) -> dict[str, Path]:  # fmt: skip
    if root is not None:
        # train writes metrics.parquet after model.pt: both teachers done, whatever the rest
        ready = [root / f"seed{seed}" / f"teacher-{n}" / "metrics.parquet" for n in ("ce", "bsce")]
        while not all(p.exists() for p in ready):
            if not wait:
                raise SystemExit(f"Expected finished teachers ({ready[0]}), got none; try --wait")
            time.sleep(30)
        return {n: root / f"seed{seed}" / f"teacher-{n}" / "model.pt" for n in ("ce", "bsce")}
    paths = {}
    for name in ("ce", "bsce"):
        flags, _offset = TEACHERS[name]
        run(
            f"train {name}", "train", "--dataset", cfg["dataset"], "--model", TEACHER_MODEL,
            *flags, "--epochs", cfg["teacher_epochs"], "--eval-every", cfg["teacher_epochs"],
            "--lr", 0.05, "--batch-size", 64, "--seed", seed, "--device", "cpu",
            "--out", out / f"teacher-{name}", "--json",
        )  # fmt: skip
        paths[name] = out / f"teacher-{name}" / "model.pt"
    return paths


def run_seed(seed: int, out: Path, cfg: dict[str, Any], args: argparse.Namespace) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    run = Runner(out / "commands.log")
    data = cfg["dataset"]
    teachers = teachers_for(seed, out, cfg, run, args.teachers_root, args.wait)
    pairs = [a for n, p in teachers.items() for a in ("--teacher", f"{n}={p}")]
    plan = tomllib.loads(args.plan.read_text())
    students = [s for s in plan["student"] if s["name"] in STUDENTS]
    defaults = plan.get("defaults", {}) | {
        "epochs": cfg["student_epochs"], "seed": seed, "data_seed": seed,
    }  # fmt: skip
    caches: dict[str, dict[str, Any]] = {}
    for k in [0, *args.topk]:
        kind = kind_name(k)
        cache = out / f"cache-{kind}.slc"
        t0 = time.perf_counter()
        run(
            f"dump {kind}", "dump", "--dataset", data, "--out", cache,  # a rerun resumes it
            "--views", cfg["views"], "--chunk-size", 1024, "--seed", seed, "--device", "cpu",
            "--no-features", *(["--topk", k] if k else []), *pairs, "--json",
        )  # fmt: skip
        dump_s = time.perf_counter() - t0
        tau = run(f"tune-tau {kind}", "tune-tau", cache, "--teacher", "bsce", "--json")
        plan_file = out / f"plan-{kind}.toml"
        plan_file.write_text(_toml({"defaults": defaults, "student": students}))
        caches[kind] = {"cache": cache, "plan": plan_file, "dump_s": dump_s,
                        "bytes": cache_bytes(cache), "tune_tau": tau}  # fmt: skip

    def distill(kind: str) -> tuple[str, Path, float | None]:
        folder = out / f"students-{kind}"
        if args.reuse_students and (folder / "summary.json").exists():
            return kind, folder / "summary.json", None  # finished before, same plan
        t0 = time.perf_counter()
        run(
            f"distill {kind}", "distill", caches[kind]["cache"], "--dataset", data,
            "--plan", caches[kind]["plan"], "--out", folder,
            "--eval-every", cfg["student_epochs"], "--device", "cpu", "--no-plots",
        )  # fmt: skip
        return kind, folder / "summary.json", time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        done = list(pool.map(distill, caches))
    rows = []
    order = [s["name"] for s in students]
    for kind, summary, seconds in done:
        caches[kind]["distill_s"] = seconds
        got = json.loads(summary.read_text())["students"]
        for s in sorted(got, key=lambda s: order.index(s["name"])):
            hp = s.get("hparams") or {}
            extra = {k: hp.get(k) for k in ("tau", "power") if hp.get(k) is not None}
            rows.append(_metrics(seed, s["name"], s, kind=kind, status=s.get("status"), **extra))
    info = {
        kind: {
            "dump_s": c["dump_s"], "distill_s": c.get("distill_s"), "bytes": c["bytes"],
            "tune_tau": c["tune_tau"].get("choice"),
            **tune_grid(c["tune_tau"]),
        }
        for kind, c in caches.items()
    }  # fmt: skip
    return {"seed": seed, "rows": rows, "caches": info}


def tune_grid(tuned: dict[str, Any]) -> dict[str, Any]:
    """The T/p grid of a tune-tau result and its tail/head ratio at each T/p (the first
    grid point of that T/p: V depends on T/p only)."""
    ratios: dict[float, float] = {}
    for g in tuned.get("grid", []):
        ratios.setdefault(g["tau_eff"], g["ratio_tail_head"])
    return {"tau_effs": sorted(ratios), "ratios": [ratios[t] for t in sorted(ratios)]}


def add_ratios(result: dict[str, Any], out: Path) -> None:
    """Older seed.json files kept no ratios: tune-tau --dry-run once more on each cache."""
    run = Runner(out / "commands.log")
    for kind, c in result["caches"].items():
        if "ratios" not in c:
            cache = out / f"cache-{kind}.slc"
            c |= tune_grid(run(f"tune-tau {kind}", "tune-tau", cache, "--teacher", "bsce",
                               "--dry-run", "--json"))  # fmt: skip


def grid_steps(dense: dict[str, Any], sparse: dict[str, Any]) -> int | None:
    """How many T/p grid points apart the two tune-tau choices are."""
    effs = dense["tau_effs"]
    a, b = dense["tune_tau"]["tau_eff"], sparse["tune_tau"]["tau_eff"]
    if a not in effs or b not in effs:
        return None
    return effs.index(b) - effs.index(a)


def print_tables(results: list[dict[str, Any]], kinds: list[str]) -> None:
    seeds = [r["seed"] for r in results]
    thirds = any(x.get("head") is not None and x.get("many") is None
                 for r in results for x in r["rows"])  # fmt: skip
    reports = []
    for kind in kinds:
        runs = [
            seed_run(
                r["seed"], "thirds" if thirds else "absolute",
                [{**x, "name": x["run"], "method": x["run"], "status": x.get("status") or "ok"}
                 for x in r["rows"] if x["kind"] == kind],
            )
            for r in results
        ]  # fmt: skip
        reports.append(((kind,), aggregate(runs)))
    print("\n".join(markdown_table(reports, lead=("cache", "student"))))

    keys = [k for k in DIFF_KEYS if all(k in x for r in results for x in r["rows"])]
    print(f"\nDense minus sparse, points (seeds {seeds}; mean ± sd; per seed in brackets):\n")
    print("| student | cache | " + " | ".join(keys) + " |")
    print("|---" * (2 + len(keys)) + "|")
    for kind in kinds[1:]:
        for name in STUDENTS:
            cells = []
            for key in keys:
                diffs = []
                for r in results:
                    by = {(x["kind"], x["run"]): x for x in r["rows"]}
                    d, s = by.get(("dense", name)), by.get((kind, name))
                    if d and s and d.get(key) is not None and s.get(key) is not None:
                        diffs.append(100 * (d[key] - s[key]))
                sd = f" ± {statistics.stdev(diffs):.2f}" if len(diffs) > 1 else ""
                per = ", ".join(f"{v:+.2f}" for v in diffs)
                mean = statistics.mean(diffs) if diffs else float("nan")
                cells.append(f"{mean:+.2f}{sd} [{per}]")
            print(f"| {name} | {kind} | " + " | ".join(cells) + " |")

    print(
        "\n| seed | cache | tune-tau T, p (T/p) | steps from dense | tail/head at dense's T/p "
        "| bytes | dump s | distill s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        for kind in kinds:
            c = r["caches"][kind]
            ch = c["tune_tau"]
            steps = grid_steps(r["caches"]["dense"], c)
            at = r["caches"]["dense"]["tune_tau"]["tau_eff"]
            ratio = dict(zip(c["tau_effs"], c["ratios"], strict=True)).get(at)
            print(
                f"| {r['seed']} | {kind} | {ch['tau']:g}, {ch['power']:g} ({ch['tau_eff']:g}) "
                f"| {steps} | {ratio:.3f} | {c['bytes']:,} | {c['dump_s']:.1f} "
                f"| {'reused' if c['distill_s'] is None else format(c['distill_s'], '.0f')} |"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--topk", nargs="+", type=int, default=[10], help="sparse K (dense always)")
    ap.add_argument("--quick", action="store_true", help="tiny data, 1 epoch: a smoke run")
    ap.add_argument("--jobs", type=int, default=2, help="caches distilled at a time")
    ap.add_argument("--teachers-root", type=Path, help="testbed_table.py --out with teachers")
    ap.add_argument("--wait", action="store_true", help="wait for a seed's teachers to finish")
    ap.add_argument("--student-epochs", type=int)
    ap.add_argument("--views", type=int)
    ap.add_argument("--plan", type=Path, default=ROOT / "benchmarks" / "testbed_plan.toml")
    ap.add_argument("--out", type=Path, default=Path("/tmp/softlabels-sparse-dense"))
    ap.add_argument("--resume", action="store_true", help="reuse the seeds finished under --out")
    ap.add_argument(
        "--reuse-students",
        action="store_true",
        help="a cache kind whose students-<kind>/summary.json exists under a seed is not "
        "distilled again (e.g. dense students kept from an earlier run of the same plan)",
    )
    ap.add_argument("--report", action="store_true", help="only print the finished seeds")
    args = ap.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("student_epochs", "views"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.quick and args.teachers_root is not None:
        raise SystemExit("Expected --quick without --teachers-root (its data differ), got both")

    from softlabels.data import load_dataset

    load_dataset(cfg["dataset"])  # the pool once, so parallel subprocesses read it from disk
    kinds = [kind_name(k) for k in [0, *args.topk]]
    results = []
    for seed in args.seeds:
        done = args.out / f"seed{seed}" / "seed.json"
        if (args.resume or args.report) and done.exists():
            saved = json.loads(done.read_text())
            if saved["config"] != cfg or not set(kinds) <= set(saved["result"]["caches"]):
                raise SystemExit(f"{done} was run with {saved['config']}, not {cfg} / {kinds}")
            if "ratios" not in next(iter(saved["result"]["caches"].values())):
                add_ratios(saved["result"], args.out / f"seed{seed}")
                done.write_text(json.dumps(saved, indent=2) + "\n")
            results.append(saved["result"])
        elif not args.report:
            res = run_seed(seed, args.out / f"seed{seed}", cfg, args)
            done.write_text(json.dumps({"config": cfg, "result": res}, indent=2) + "\n")
            results.append(res)
    if not results:
        raise SystemExit("Expected finished seeds, got none")
    print(f"{cfg['dataset']}, seeds {[r['seed'] for r in results]}; {cfg}\n")
    print_tables(results, kinds)
    out = {"config": cfg, "kinds": kinds, "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
