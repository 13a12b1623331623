"""Rerun the project's benchmark figures (``make bench``): each script in a child process,
its JSON kept, a table printed.

    .venv/bin/python benchmarks/run_all.py                  # quick settings, a few minutes
    BENCH_FULL=1 .venv/bin/python benchmarks/run_all.py     # the settings RESULTS.md records
    .venv/bin/python benchmarks/run_all.py --only dump,topk --out bench-results
    .venv/bin/python benchmarks/run_all.py --list           # what would run, and how

Quick settings shrink the data, epochs and repeats so the whole set finishes in a few
minutes on a 2-core CPU: their figures show that every benchmark runs and roughly where it
stands, not the recorded numbers. ``--full`` (or ``BENCH_FULL=1``) runs the recorded
settings (tens of minutes to hours; tune-tau writes ~7 GB). Benchmarks that have no quick
setting run only under ``--full``.

Each benchmark's JSON result (the last JSON document it prints) goes to
``OUT/<name>.json`` with the command, exit code, wall time and load average;
``OUT/summary.json`` lists them all. Scratch files live in ``OUT/work`` (removed after
each benchmark). Exit code 1 when a benchmark failed, 2 for bad arguments.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FULL_ENV = "BENCH_FULL"
DEFAULT_OUT = "bench-results"


@dataclass(frozen=True)
class Bench:
    """One figure: a script of this folder with its quick and full arguments.

    ``{work}`` in the arguments becomes the benchmark's scratch folder. ``quick`` None: the
    benchmark has no quick setting and runs only in full mode. ``headline``: dotted keys (or
    fnmatch patterns over them) of the result shown in the table."""

    name: str
    script: str
    quick: tuple[str, ...] | None
    full: tuple[str, ...]
    headline: tuple[str, ...]
    what: str
    env: tuple[tuple[str, str], ...] = (("OMP_NUM_THREADS", "1"),)


BENCHES: tuple[Bench, ...] = (
    Bench(
        "dump",
        "bench_dump.py",
        ("--repeats", "5"),
        ("--repeats", "9"),
        ("ratio", "ratio_of_mins", "bare_median_s", "dump_median_s"),
        "dump vs bare teacher loop, cnn1d, clean view",
    ),
    Bench(
        "dump-views8",
        "bench_dump.py",
        ("--views", "8", "--repeats", "3", "--dataset", "mnist1d-lt:imb=100,n_max=1000"),
        ("--views", "8", "--repeats", "7"),
        ("ratio", "ratio_of_mins", "bare_median_s", "dump_median_s"),
        "dump vs bare teacher loop, cnn1d, 8 augmented views",
    ),
    Bench(
        "dump-resnet1d",
        "bench_dump.py",
        (
            "--dataset",
            "mnist1d100-lt:n_max=60,imb=10,n_test=10",
            "--teacher",
            "resnet1d",
            "--repeats",
            "3",
        ),
        ("--dataset", "mnist1d100-lt", "--teacher", "resnet1d", "--repeats", "7"),
        ("ratio", "ratio_of_mins", "bare_median_s", "dump_median_s"),
        "dump vs bare teacher loop, resnet1d on mnist1d100-lt",
    ),
    Bench(
        "distill",
        "bench_distill.py",
        (
            *("--dataset", "mnist1d-lt:imb=100,n_max=300", "--epochs", "1", "--repeats", "2"),
            *("--pieces-n", "20", "--per-batch-epochs", "1", "--threads", "1"),
        ),
        ("--threads", "1"),
        ("summary.cpu.*ratio*", "summary.wall.*ratio*"),
        "distill throughput: kd/ce, online/kd, 4 students per pass",
    ),
    Bench(
        "tune-tau",
        "bench_tune_tau.py",
        ("--n", "20000", "--c", "1000", "--out", "{work}/tune-tau.slc"),
        ("--out", "{work}/tune-tau.slc"),
        ("pass.seconds", "pass.rows_per_s", "read.seconds", "read.rows_per_s"),
        "tune-tau pass over a synthetic cache (full: iNat-2018 scale, ~7 GB)",
    ),
    Bench(
        "stream",
        "bench_stream.py",
        ("memory", "--n", "20000", "--c", "1000", "--budget", "8MB", "--out", "{work}/s.slc"),
        ("memory", "--n", "150000", "--c", "10000", "--budget", "1GB", "--out", "{work}/s.slc"),
        (
            "streamed.peak_growth_bytes",
            "memory.peak_growth_bytes",
            "streamed.budget_bytes",
            "streamed.rows_per_s_epoch",
        ),
        "teacher targets larger than the budget: peak memory streamed vs held (3 GB cache)",
    ),
    Bench(
        "topk",
        "bench_topk.py",
        ("--parts", "inat", "--work", "{work}"),
        ("--work", "{work}"),
        (
            "inat.by_k.20.bytes_per_view",
            "inat.by_k.20.kl_mean_t4",
            "c100.by_k.10.bytes_per_view",
            "c100.by_k.10.kl_mean_t4",
        ),
        "sparse teacher outputs: bytes per view and rebuild errors",
        (("OMP_NUM_THREADS", "2"),),
    ),
    Bench(
        "dump-ranks",
        "bench_dump_ranks.py",
        ("--views", "2", "--repeats", "1"),
        ("--repeats", "3"),
        ("ratio_wall_n_over_1", "ratio_wall_n_over_1t", "identical_bytes"),
        "dump by 1 process vs 2 under torchrun (resnet32, digits-lt)",
        (),
    ),
    Bench(
        "testbed",
        "testbed_table.py",
        ("--quick", "--out", "{work}/testbed"),
        ("--seeds", "0", "--out", "{work}/testbed"),
        ("*balanced*",),
        "every method on the 100-class test bed (quick: a smoke run)",
    ),
    Bench(
        "resnet-dive",
        "bench_resnet_dive.py",
        None,
        ("--epochs", "3", "--data", "{work}/data", "--out", "{work}/run"),
        ("median_epoch_seconds", "dump_seconds", "projected_200_epochs_seconds"),
        "ResNet-32 DiVE student epoch time, CIFAR-100-LT-shaped synthetic data",
    ),
    Bench(
        "fault-injection",
        "fault_injection.py",
        None,
        ("--trials", "20", "--seed", "0"),
        ("totals.trials_ok", "totals.trials_run", "totals.data_lost"),
        "kill -9 / damage / ENOSPC trials (reliability counts)",
    ),
)
BY_NAME = {b.name: b for b in BENCHES}


# --------------------------------------------------------------------------- arguments


def full_from_env(environ: Mapping[str, str]) -> bool:
    """Whether ``BENCH_FULL`` asks for the full settings (1, true, yes, on)."""
    return environ.get(FULL_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--full", action="store_true", help=f"recorded settings (or {FULL_ENV}=1)")
    ap.add_argument("--only", help="comma-separated names (see --list); default: all")
    ap.add_argument("--skip", help="comma-separated names to leave out")
    ap.add_argument("--out", default=DEFAULT_OUT, help=f"result folder (default {DEFAULT_OUT})")
    ap.add_argument("--list", action="store_true", help="print the plan and exit")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per benchmark")
    args = ap.parse_args(argv)
    args.full = args.full or full_from_env(environ)
    for flag in ("only", "skip"):
        names = [n.strip() for n in (getattr(args, flag) or "").split(",") if n.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            ap.error(
                f"Expected --{flag} names among {', '.join(BY_NAME)}, got {', '.join(unknown)}"
            )
        setattr(args, flag, names)
    if args.timeout is not None and args.timeout <= 0:
        ap.error(f"Expected --timeout > 0 seconds, got {args.timeout}")
    return args


def selected(args: argparse.Namespace) -> list[Bench]:
    """The benchmarks to run, in the registry's order: ``--only`` (else all that have a
    setting for the mode), minus ``--skip``."""
    return [
        b
        for b in BENCHES
        if (b.name in args.only if args.only else args.full or b.quick is not None)
        and b.name not in args.skip
    ]


def command(bench: Bench, full: bool, work: Path) -> list[str] | None:
    """The child's command line; None when the benchmark has no setting for the mode."""
    extra = bench.full if full else bench.quick
    if extra is None:
        return None
    return [sys.executable, str(HERE / bench.script), *(a.format(work=work) for a in extra)]


# --------------------------------------------------------------------------- results


def last_json(text: str) -> Any:
    """The last JSON document printed: one line, or an indented object starting at a line
    that begins with ``{`` (None when there is none)."""
    lines = text.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        if not line.startswith(("{", "[")):
            continue
        for candidate in (line, "\n".join(lines[i:])):
            try:
                return json.loads(candidate)
            except ValueError:
                continue
    return None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Scalar leaves of nested dicts under dotted keys."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: value} if prefix and not isinstance(value, list) else {}


def headline(result: Any, patterns: Sequence[str], limit: int = 4) -> list[tuple[str, Any]]:
    """Up to ``limit`` (key, value) pairs of ``result`` matching ``patterns``, in order."""
    flat = flatten(result) if isinstance(result, dict) else {}
    shown: list[tuple[str, Any]] = []
    for pattern in patterns:
        for key in fnmatch.filter(flat, pattern) if any(c in pattern for c in "*?[") else [pattern]:
            if key in flat and all(key != k for k, _ in shown) and len(shown) < limit:
                shown.append((key, flat[key]))
    return shown


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def run_one(bench: Bench, full: bool, out: Path, timeout: float | None) -> dict[str, Any]:
    work = out / "work" / bench.name
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    cmd = command(bench, full, work)
    assert cmd is not None
    env = {**os.environ, **dict(bench.env)}
    record: dict[str, Any] = {
        "name": bench.name,
        "mode": "full" if full else "quick",
        "command": cmd[1:],
        "env": dict(bench.env),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg_before": os.getloadavg(),
    }
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=timeout
        )
        record["rc"], stdout, stderr = proc.returncode, proc.stdout, proc.stderr
    except subprocess.TimeoutExpired as exc:
        record["rc"] = "timeout"
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
    finally:
        shutil.rmtree(work, ignore_errors=True)
    record["seconds"] = round(time.perf_counter() - t0, 2)
    record["loadavg_after"] = os.getloadavg()
    record["result"] = last_json(stdout)
    if record["rc"] != 0:
        record["stderr_tail"] = stderr[-2000:]
    (out / f"{bench.name}.json").write_text(json.dumps(record, indent=1, default=str))
    (out / f"{bench.name}.log").write_text(stdout + ("\n--- stderr\n" + stderr if stderr else ""))
    return record


def table(records: Sequence[dict[str, Any]]) -> Any:
    from rich.table import Table

    t = Table(title="softlabels benchmarks")
    for col in ("benchmark", "mode", "status", "seconds", "figures"):
        t.add_column(col, justify="right" if col == "seconds" else "left")
    for rec in records:
        ok = rec["rc"] == 0
        figures = ", ".join(
            f"{k}={fmt(v)}" for k, v in headline(rec.get("result"), BY_NAME[rec["name"]].headline)
        )
        t.add_row(
            rec["name"],
            rec["mode"],
            "ok" if ok else f"[red]failed ({rec['rc']})[/red]",
            f"{rec['seconds']:.1f}",
            figures or "-",
        )
    return t


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    args = parse_args(argv, os.environ)
    console = Console(soft_wrap=True)
    out = Path(args.out).resolve()  # the children run in the repository root
    benches = selected(args)
    if args.list:
        for b in benches:
            cmd = command(b, args.full, out / "work" / b.name)
            shown = " ".join(cmd[1:]) if cmd else "(full mode only)"
            console.print(f"[bold]{b.name}[/bold]: {b.what}\n    {shown}", highlight=False)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for b in benches:
        if command(b, args.full, out) is None:
            console.print(f"{b.name}: no quick setting; run with --full", highlight=False)
            continue
        console.print(f"running {b.name} ({b.what}) ...", highlight=False)
        records.append(run_one(b, args.full, out, args.timeout))
    summary = {
        "mode": "full" if args.full else "quick",
        "benchmarks": [
            {k: r[k] for k in ("name", "rc", "seconds")}
            | {"figures": dict(headline(r.get("result"), BY_NAME[r["name"]].headline))}
            for r in records
        ],
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    shutil.rmtree(out / "work", ignore_errors=True)
    console.print(table(records))
    console.print(f"JSON in {out}/", highlight=False)
    return 0 if all(r["rc"] == 0 for r in records) else 1


if __name__ == "__main__":
    raise SystemExit(main())
