"""The 100-class long-tailed test bed table: every method on mnist1d100-lt, via the real CLI.

    .venv/bin/python benchmarks/testbed_table.py --seeds 0 1 2 --out /tmp/testbed
    .venv/bin/python benchmarks/testbed_table.py --quick          # smoke run, about a minute

Per seed s, each step a `softlabels` subprocess (the console script next to this Python):

1. teachers (resnet1d, the stronger 1-D model): CE, BSCE, CE + rotation SSL (SSD stage I),
   two cosine-classifier CE teachers (CBD; seeds 10 s + 1 standard, 10 s + 2 strong
   augmentation); ``--jobs`` of them at a time;
2. ``dump`` of all five (logits + features, ``--views`` replayable augmented views);
3. ``tune-tau`` on the BSCE teacher (DiVE's rule: the ``tau = "auto"`` student);
4. ``calibrate --method lws`` on the SSD teacher (stage II, evaluated on the test split);
5. ``distill`` of the students of ``benchmarks/testbed_plan.toml`` (cnn1d: CE, BSCE, KD,
   DiVE auto and T = 3 / p = 0.5, BKD, CBD, SSD with stage-IV LWS, ECL; a marked place
   for DKD), split over ``--jobs`` processes; results from each ``summary.json``.

Every subprocess runs single-threaded (``OMP_NUM_THREADS=1``): on the 2 shared cores of
the development machine two single-threaded jobs beat one two-threaded one by far for these
small models. Prints a Markdown table (mean ± sd over seeds, in %: top-1 on the balanced
test set, shot groups, ECE), a timing table, then one JSON line with every row; everything
also lands in ``OUT/rows.json``.

Budget (measured 2026-12-01 on the 2 shared cores, load average 4-6 from other jobs): one
resnet1d teacher, 30 epochs, single-threaded: 241 s (67.7% top-1); dump of five teachers
with 4 views: 45 s; tune-tau 5 s; calibrate 17 s; the two halves of the plan: 15-18 s per
student epoch each, in parallel. One seed of the full table with ``--jobs 2``: about 12 min
of teachers + 1 min of dump/tune-tau/calibrate + 8-9 min of students, ~22 min (~38 min
with ``--jobs 1``). ``--quick``: about a minute.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _table import markdown_table, seed_run

from softlabels.reports import aggregate

ROOT = Path(__file__).resolve().parents[1]
KEYS = ("top1", "many", "medium", "few", "ece")
THIRDS = ("head", "middle", "tail")
TEACHER_MODEL = "resnet1d"

FULL = {
    "dataset": "mnist1d100-lt",
    "teacher_epochs": 30,
    "student_epochs": 30,
    "views": 4,
}
QUICK = {
    "dataset": "mnist1d100-lt:n_max=20,n_test=5,imb=10",
    "teacher_epochs": 1,
    "student_epochs": 1,
    "views": 2,
}
# name: (extra `softlabels train` flags, seed offset) as in scripts/demo.sh, on resnet1d.
TEACHERS: dict[str, tuple[list[str], int]] = {
    "ce": (["--loss", "ce"], 0),
    "bsce": (["--loss", "bsce"], 0),
    "ssd": (["--loss", "ce", "--ssl", "rotation"], 0),
    "cbd1": (["--loss", "ce", "--classifier", "cosine"], 1),
    "cbd2": (["--loss", "ce", "--classifier", "cosine", "--augment", "strong"], 2),
}
# Rough relative cost of a student (for splitting the plan over processes).
COST = {"ecl": 3.0, "cbd": 1.5, "ssd": 1.5}


def cli() -> list[str]:
    script = Path(sys.executable).with_name("softlabels")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "softlabels"]


class Runner:
    """Runs `softlabels` subprocesses single-threaded and keeps their wall times."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.times: list[dict[str, Any]] = []
        self.env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def __call__(self, step: str, *args: object) -> dict[str, Any]:
        cmd = [*cli(), *(str(a) for a in args)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=self.env, check=False)
        seconds = time.perf_counter() - t0
        with self.log.open("a") as f:
            f.write(f"$ {' '.join(cmd)}\n# {seconds:.1f} s, exit {proc.returncode}\n")
            f.write(proc.stderr[-4000:] + "\n")
        if proc.returncode != 0:
            tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
            raise SystemExit(f"step {step!r} failed (exit {proc.returncode}):\n{tail}")
        self.times.append({"step": step, "seconds": seconds})
        out = proc.stdout.strip()
        return json.loads(out) if out.startswith("{") else {}


def _metrics(seed: int, run: str, m: dict[str, Any], **extra: Any) -> dict[str, Any]:
    groups = m.get("groups") if isinstance(m.get("groups"), dict) else m
    row = {"seed": seed, "run": run, "top1": m.get("top1"), "ece": m.get("ece"), **extra}
    for k in (*KEYS[1:4], *THIRDS):
        if groups.get(k) is not None:
            row[k] = groups[k]
    return row


def split_plan(plan: dict[str, Any], jobs: int, epochs: int, seed: int) -> list[dict[str, Any]]:
    """``jobs`` plans over the students (greedy by cost), with the run's epochs and seeds."""
    defaults = plan.get("defaults", {}) | {"epochs": epochs, "seed": seed, "data_seed": seed}
    parts: list[list[dict[str, Any]]] = [[] for _ in range(max(1, jobs))]
    loads = [0.0] * len(parts)
    students = sorted(plan["student"], key=lambda s: -COST.get(s["method"], 1.0))
    for s in students:
        i = loads.index(min(loads))
        parts[i].append(s)
        loads[i] += COST.get(s["method"], 1.0)
    return [{"defaults": defaults, "student": p} for p in parts if p]


def _toml(plan: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        return json.dumps(v)  # strings, numbers, booleans and lists read the same in TOML

    lines = ["[defaults]", *(f"{k} = {value(v)}" for k, v in plan["defaults"].items())]
    for s in plan["student"]:
        lines += ["", "[[student]]", *(f"{k} = {value(v)}" for k, v in s.items())]
    return "\n".join(lines) + "\n"


def run_seed(seed: int, out: Path, cfg: dict[str, Any], plan_path: Path, jobs: int) -> tuple:
    out.mkdir(parents=True, exist_ok=True)
    run = Runner(out / "commands.log")
    data = cfg["dataset"]
    rows: list[dict[str, Any]] = []
    t_seed = time.perf_counter()

    names = cfg.get("teachers", list(TEACHERS))
    teacher_model = cfg.get("teacher_model", TEACHER_MODEL)

    def teacher(name: str) -> tuple[str, dict[str, Any]]:
        flags, offset = TEACHERS[name]
        res = run(
            f"train {name}", "train", "--dataset", data, "--model", teacher_model, *flags,
            "--epochs", cfg["teacher_epochs"], "--eval-every", cfg["teacher_epochs"],
            "--lr", 0.05, "--batch-size", 64, "--seed", seed * 10 + offset if offset else seed,
            "--device", "cpu", "--out", out / f"teacher-{name}", "--json",
        )  # fmt: skip
        return name, res

    # The rotation teacher (two passes per batch) first, so the others fill the other job.
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        trained = dict(pool.map(teacher, sorted(names, key=lambda n: n != "ssd")))
    for name in names:
        res = trained[name]
        rows.append(_metrics(seed, f"teacher {name}", res["metrics"], seconds=res.get("seconds")))

    cache = out / "cache.slc"
    pairs = [a for n in names for a in ("--teacher", f"{n}={out / f'teacher-{n}' / 'model.pt'}")]
    run(
        "dump", "dump", "--dataset", data, "--out", cache, "--overwrite", "--views",
        cfg["views"], "--chunk-size", 1024, "--seed", seed, "--device", "cpu", *pairs, "--json",
    )  # fmt: skip
    tau = run("tune-tau", "tune-tau", cache, "--teacher", "bsce", "--json")
    if "ssd" in names:  # SSD stage II: its teacher calibrated on the cached features
        cal = run(
            "calibrate", "calibrate", cache, "--teacher", "ssd", "--method", "lws",
            "--overwrite", "--dataset", data, "--device", "cpu", "--json",
        )  # fmt: skip
        after = cal.get("evaluation", {}).get("after") or {}
        if after:
            rows.append(_metrics(seed, "teacher ssd+lws", after))

    plan = tomllib.loads(plan_path.read_text())
    parts = split_plan(plan, jobs, cfg["student_epochs"], seed)
    plan_files = []
    for i, part in enumerate(parts):
        path = out / f"plan-{i}.toml"
        path.write_text(_toml(part))
        plan_files.append(path)

    def distill(i: int) -> Path:
        folder = out / f"students-{i}"
        run(
            f"distill {i}", "distill", cache, "--dataset", data, "--plan", plan_files[i],
            "--out", folder, "--eval-every", cfg["student_epochs"], "--device", "cpu",
            "--no-plots",
        )  # fmt: skip
        return folder / "summary.json"

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        summaries = list(pool.map(distill, range(len(plan_files))))
    order = [s["name"] for s in plan["student"]]
    students = [s for p in summaries for s in json.loads(p.read_text())["students"]]
    for s in sorted(students, key=lambda s: order.index(s["name"])):
        hp = s.get("hparams") or {}
        extra = {k: hp.get(k) for k in ("tau", "power") if hp.get(k) is not None}
        rows.append(_metrics(seed, s["name"], s, status=s.get("status"), **extra))
        if s.get("hard_lws"):
            rows.append(_metrics(seed, f"{s['name']} hard+lws", s["hard_lws"]))
    run.times.append({"step": "seed total", "seconds": time.perf_counter() - t_seed})
    info = {"seed": seed, "tune_tau": tau.get("choice", tau.get("chosen")), "times": run.times}
    return rows, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--quick", action="store_true", help="tiny data, 1 epoch: a smoke run")
    ap.add_argument("--jobs", type=int, default=2, help="parallel single-threaded processes")
    ap.add_argument("--dataset", help="override the dataset spec")
    ap.add_argument("--teacher-epochs", type=int)
    ap.add_argument("--student-epochs", type=int)
    ap.add_argument("--views", type=int)
    ap.add_argument("--teacher-model", help=f"the teachers' model (default {TEACHER_MODEL})")
    ap.add_argument("--teachers", help=f"comma-separated subset of {','.join(TEACHERS)}")
    ap.add_argument("--plan", type=Path, default=ROOT / "benchmarks" / "testbed_plan.toml")
    ap.add_argument("--out", type=Path, default=Path("/tmp/softlabels-testbed"))
    ap.add_argument(
        "--resume", action="store_true", help="reuse the seeds already finished under --out"
    )
    args = ap.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    for key in ("dataset", "teacher_epochs", "student_epochs", "views", "teacher_model"):
        if getattr(args, key) is not None:
            cfg[key] = getattr(args, key)
    if args.teachers:
        cfg["teachers"] = args.teachers.split(",")
        if unknown := sorted(set(cfg["teachers"]) - set(TEACHERS)):
            raise SystemExit(f"Expected teachers among {sorted(TEACHERS)}, got {unknown}")

    # Generate the pool once here, so parallel subprocesses read it from the disk cache.
    from softlabels.data import load_dataset

    load_dataset(cfg["dataset"])
    rows: list[dict[str, Any]] = []
    infos = []
    for seed in args.seeds:
        done = args.out / f"seed{seed}" / "seed.json"
        if args.resume and done.exists():  # a finished seed of the same configuration
            saved = json.loads(done.read_text())
            if saved["config"] != cfg:
                raise SystemExit(f"{done} was run with {saved['config']}, not {cfg}")
            r, info = saved["rows"], saved["info"]
        else:
            r, info = run_seed(seed, args.out / f"seed{seed}", cfg, args.plan, args.jobs)
            done.write_text(json.dumps({"config": cfg, "rows": r, "info": info}, indent=2) + "\n")
        rows += r
        infos.append(info)

    # Relative thirds when a shot group is empty (small spec): distill reports only those.
    thirds = any(r.get("head") is not None and r.get("many") is None for r in rows)
    print(f"{cfg['dataset']}, seeds {args.seeds}; {cfg} (%, mean ± sd over seeds)\n")
    runs = [
        seed_run(
            seed,
            "thirds" if thirds else "absolute",
            [
                {**r, "name": r["run"], "method": r["run"], "status": r.get("status") or "ok"}
                for r in rows
                if r["seed"] == seed
            ],
        )
        for seed in args.seeds
    ]
    print("\n".join(markdown_table([((), aggregate(runs))], lead=("run",))))
    print("\n| step | seconds (mean over seeds) |\n|---|---|")
    steps = dict.fromkeys(t["step"] for i in infos for t in i["times"])
    for step in steps:
        secs = [t["seconds"] for i in infos for t in i["times"] if t["step"] == step]
        print(f"| {step} | {statistics.mean(secs):.1f} |")
    result = {"config": cfg, "seeds": args.seeds, "rows": rows, "runs": infos}
    (args.out / "rows.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
