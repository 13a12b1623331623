"""Capacity ablation on the 100-class bed: students with the teachers' architecture.

    .venv/bin/python benchmarks/capacity_ablation.py --seeds 0 --bed /work/runs/testbed \\
        --out /tmp/capacity
    .venv/bin/python benchmarks/capacity_ablation.py --quick       # smoke run, a few minutes

The hypothesis: DiVE falls short of its BSCE teacher, and the SSD student of its
LWS-calibrated teacher, on mnist1d100-lt only because the cnn1d students have a seventh of
the resnet1d teachers' parameters. Per seed s, from a copy of the test bed's cache
``BED/seed{s}/cache.slc`` (``testbed_table.py --out BED``: its tune-tau choice and the
``ssd+lws`` teacher are in it), one ``softlabels distill`` per student (in the order of
``--students``, resumable, so partial results count) of the plan's BSCE, DiVE (tau
auto) and SSD (stage-IV LWS) students with ``--model`` each of ``--models`` (default the
teachers' resnet1d), same epochs and seeds as the bed, and of the cnn1d DiVE student with
each of ``--long-epochs``. The bed's own cnn1d rows and teacher rows of the same seed (same
cache, same seeds: the same numbers) come from ``BED/seed{s}/seed.json``.

Prints the Markdown table (mean ± sd over seeds, %), the orderings at each capacity, and
writes ``OUT/results.json``. ``--quick`` first runs ``testbed_table.py``'s quick bed here.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _table import markdown_table, seed_run
from testbed_table import FULL, QUICK, ROOT, Runner, _metrics, _toml, run_seed

from softlabels.reports import aggregate

STUDENTS = ("bsce", "dive-auto", "ssd")  # names in the plan
BED_ROWS = ("teacher bsce", "teacher ssd+lws", "bsce", "dive-auto", "ssd", "ssd hard+lws")
# (student, reference, what the papers expect): student >= reference.
ORDERINGS = (
    ("dive-auto", "teacher bsce"),
    ("ssd", "teacher ssd+lws"),
    ("ssd hard+lws", "teacher ssd+lws"),
    ("dive-auto", "bsce"),
)


def students(plan: dict[str, Any], models: list[str], long_epochs: list[int], names) -> list:
    by_name = {s["name"]: s for s in plan["student"]}
    out = [by_name[n] | {"name": f"{n}.{m}", "model": m} for m in models for n in names]
    out += [by_name["dive-auto"] | {"name": f"dive-auto.{e}ep", "epochs": e} for e in long_epochs]
    return out


def seed_rows(seed: int, bed: Path, out: Path, cfg: dict[str, Any], args) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    saved = json.loads((bed / "seed.json").read_text())
    rows = [r | {"run": f"{r['run']}.bed"} if not r["run"].startswith("teacher") else r
            for r in saved["rows"] if r["run"] in BED_ROWS]  # fmt: skip
    cache = out / "cache.slc"
    if not cache.exists():  # a copy: distill reads only, but the bed's cache is not ours
        shutil.copytree(bed / "cache.slc", cache)
    plan = tomllib.loads(args.plan.read_text())
    todo = students(plan, args.models, args.long_epochs, args.students)
    defaults = plan.get("defaults", {}) | {
        "epochs": cfg["student_epochs"], "seed": seed, "data_seed": seed,
    }  # fmt: skip
    run = Runner(out / "commands.log")

    def distill(student: dict[str, Any]) -> Path | None:
        """One student per process and folder, in the given order: partial results count."""
        folder = out / f"students-{student['name']}"
        if (folder / "summary.json").exists():
            return folder / "summary.json"
        if args.report:
            return None
        (out / f"plan-{student['name']}.toml").write_text(
            _toml({"defaults": defaults, "student": [student]})
        )
        run(
            f"distill {student['name']}", "distill", cache, "--dataset", cfg["dataset"],
            "--plan", out / f"plan-{student['name']}.toml", "--out", folder, "--device", "cpu",
            "--eval-every", student.get("epochs", cfg["student_epochs"]), "--no-plots",
        )  # fmt: skip
        return folder / "summary.json"

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        summaries = [p for p in pool.map(distill, todo) if p is not None]
    for s in (s for p in summaries for s in json.loads(p.read_text())["students"]):
        rows.append(_metrics(seed, s["name"], s, status=s.get("status"), epochs=s.get("epochs")))
        if s.get("hard_lws"):
            name, model = s["name"].split(".")
            rows.append(_metrics(seed, f"{name} hard+lws.{model}", s["hard_lws"]))
    return rows


def print_tables(rows: list[dict[str, Any]], seeds: list[int], models: list[str]) -> None:
    thirds = any(r.get("head") is not None and r.get("many") is None for r in rows)
    runs = [
        seed_run(
            seed, "thirds" if thirds else "absolute",
            [{**r, "name": r["run"], "method": r["run"], "status": r.get("status") or "ok"}
             for r in rows if r["seed"] == seed],
        )
        for seed in seeds
    ]  # fmt: skip
    print("\n".join(markdown_table([((), aggregate(runs))], lead=("run",))))
    print(
        "\n| ordering (top-1) | capacity | per seed (points) | mean | holds |\n|---|---|---|---|---|"
    )
    for model in ["bed", *models]:
        for student, ref in ORDERINGS:
            ref_run = ref if ref.startswith("teacher") else f"{ref}.{model}"
            diffs = []
            for seed in seeds:
                by = {r["run"]: r for r in rows if r["seed"] == seed}
                a, b = by.get(f"{student}.{model}"), by.get(ref_run)
                if a and b:
                    diffs.append(100 * (a["top1"] - b["top1"]))
            if diffs:
                mean = statistics.mean(diffs)
                per = ", ".join(f"{d:+.2f}" for d in diffs)
                label = "cnn1d (bed)" if model == "bed" else model
                print(f"| {student} >= {ref} | {label} | {per} | {mean:+.2f} | "
                      f"{'yes' if mean >= 0 else 'no'} |")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--quick", action="store_true", help="a quick bed first, 1 epoch: a smoke run")
    ap.add_argument("--bed", type=Path, default=Path("/tmp/softlabels-testbed"),
                    help="testbed_table.py --out (read only)")  # fmt: skip
    ap.add_argument("--models", nargs="+", default=["resnet1d"])
    ap.add_argument("--long-epochs", nargs="*", type=int, default=[], help="cnn1d DiVE epochs")
    ap.add_argument("--students", nargs="+", default=list(STUDENTS), choices=STUDENTS,
                    help="plan students at --models, distilled in this order")  # fmt: skip
    ap.add_argument("--jobs", type=int, default=1, help="students distilled at a time")
    ap.add_argument("--report", action="store_true", help="only the students already finished")
    ap.add_argument("--plan", type=Path, default=ROOT / "benchmarks" / "testbed_plan.toml")
    ap.add_argument("--out", type=Path, default=Path("/tmp/softlabels-capacity"))
    ap.add_argument("--resume", action="store_true", help="reuse the seeds finished under --out")
    args = ap.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        bed = args.out / "quick-bed" / f"seed{seed}" if args.quick else args.bed / f"seed{seed}"
        if args.quick and not (bed / "seed.json").exists():
            r, info = run_seed(seed, bed, cfg, args.plan, args.jobs)
            (bed / "seed.json").write_text(json.dumps({"config": cfg, "rows": r, "info": info}))
        done = args.out / f"seed{seed}" / "rows.json"
        if args.resume and done.exists() and not args.report:
            rows += json.loads(done.read_text())
            continue
        got = seed_rows(seed, bed, args.out / f"seed{seed}", cfg, args)
        if not args.report:
            done.write_text(json.dumps(got, indent=2) + "\n")
        rows += got
    print(f"{cfg['dataset']}, seeds {args.seeds}; {cfg}; students .model, .bed = cnn1d\n")
    print_tables(rows, args.seeds, [*args.models, *(f"{e}ep" for e in args.long_epochs)])
    result = {"config": cfg, "seeds": args.seeds, "models": args.models, "rows": rows}
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
