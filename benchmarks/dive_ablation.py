"""Why does the DiVE student not beat its BSCE teacher on mnist1d-lt? An ablation.

Runs after benchmarks/distill_mnist1d.py (reuses its teachers and 4-view caches):

    .venv/bin/python benchmarks/dive_ablation.py --root /tmp/distill-seeds --seeds 0 1 2 3 4

For each seed: the 4-view cache (students replay the teacher's 4 cached views) and a clean
cache of the same teachers (students draw fresh augmentations, clean targets). On each,
BSCE and DiVE students at tune-tau's choice and at fixed (T, p). Markdown table + JSON.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from _table import markdown_table

from softlabels.reports import report
from softlabels.students import StudentSpec, distill
from softlabels.teachers import DumpConfig, TeacherSpec, dump

KEYS = ("top1", "many", "medium", "few", "ece")


def students(seed: int, epochs: int) -> list[StudentSpec]:
    common = {
        "model": "cnn1d",
        "epochs": epochs,
        "lr": 0.05,
        "batch_size": 64,
        "seed": seed,
        "data_seed": seed,
    }
    return [
        StudentSpec(name="bsce", method="bsce", **common),
        StudentSpec(name="dive-auto", method="dive", teacher="bsce", tau="auto", **common),
        StudentSpec(
            name="dive-T3-p0.5", method="dive", teacher="bsce", tau=3.0, power=0.5, **common
        ),
        StudentSpec(
            name="dive-T2-p0.5", method="dive", teacher="bsce", tau=2.0, power=0.5, **common
        ),
        StudentSpec(name="dive-T1-p1", method="dive", teacher="bsce", tau=1.0, power=1.0, **common),
        StudentSpec(
            name="dive-T3-p0.5-a0.9",
            method="dive",
            teacher="bsce",
            tau=3.0,
            power=0.5,
            alpha=0.9,
            **common,
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", type=Path, default=Path("/tmp/softlabels-distill-seeds"))
    ap.add_argument("--dataset", default="mnist1d-lt:imb=100")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    rows = []
    run_dirs: dict[str, list[str]] = {}  # cache label -> the seeds' run folders
    for seed in args.seeds:
        d = args.root / f"seed{seed}"
        clean = d / "cache-clean.slc"
        teachers = (
            TeacherSpec("ce", str(d / "teacher-ce" / "model.pt")),
            TeacherSpec("bsce", str(d / "teacher-bsce" / "model.pt")),
        )
        dump(
            DumpConfig(dataset=args.dataset, teachers=teachers, views=0, chunk_size=512),
            str(clean),
            device="cpu",
        )
        from softlabels.analysis import store_choice, virtual_examples

        store_choice(str(clean), virtual_examples(str(clean), "bsce"))
        for label, cache in (("4 cached views", d / "cache.slc"), ("clean cache, own aug.", clean)):
            res = distill(
                str(cache),
                args.dataset,
                students(seed, args.epochs),
                d / f"ablation-{cache.stem}",
                device="cpu",
                plots=False,
                evaluate_teachers=False,
            )
            run_dirs.setdefault(label, []).append(res.out)
            for s in res.students:
                rows.append(
                    {
                        "seed": seed,
                        "cache": label,
                        "run": s["name"],
                        "tau": s["hparams"].get("tau"),
                        "power": s["hparams"].get("power"),
                        **{k: s[k] for k in KEYS},
                    }
                )
    print("\n".join(table(run_dirs)))
    print(json.dumps(rows))


def table(run_dirs: dict[str, list[str]]) -> list[str]:
    """Markdown: one line per cache and student, mean ± sd over the seeds' run folders."""
    reports = [((label,), report(dirs)) for label, dirs in run_dirs.items()]
    return markdown_table(reports, lead=("cache", "student"))


if __name__ == "__main__":
    main()
