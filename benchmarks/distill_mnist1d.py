"""Real-data table of issue 5: the demo pipeline over several seeds on mnist1d-lt:imb=100.

    .venv/bin/python benchmarks/distill_mnist1d.py --seeds 0 1 2 3 4 --out /tmp/distill-seeds

Per seed: CE and BSCE teachers (seed s) -> dump (4 views) -> tune-tau (BSCE teacher) ->
distill the students of scripts/demo_plan.toml with seed s and data seed s. Prints a
Markdown table of mean ± sd of balanced top-1 and group accuracies, then a JSON line.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from dataclasses import replace
from pathlib import Path

from _table import markdown_table, seed_run

from softlabels.analysis import store_choice, virtual_examples
from softlabels.engine.optim import OptimConfig
from softlabels.reports import RunSummary, aggregate
from softlabels.students import distill, parse_plan
from softlabels.teachers import DumpConfig, TeacherSpec, dump
from softlabels.teachers.train import TrainConfig, train

KEYS = ("top1", "many", "medium", "few", "ece")
ROOT = Path(__file__).resolve().parents[1]


TEACHERS = {  # name: (loss, ssl, classifier, augment, seed offset) as in scripts/demo.sh
    "ce": ("ce", None, "linear", "standard", 0),
    "bsce": ("bsce", None, "linear", "standard", 0),
    "ssd": ("ce", "rotation", "linear", "standard", 0),
    "cbd1": ("ce", None, "cosine", "standard", 1),
    "cbd2": ("ce", None, "cosine", "strong", 2),
}


def run_seed(
    seed: int, out: Path, dataset: str, epochs: int, plan: Path, views: int
) -> tuple[list[dict], RunSummary]:
    """One seed: its rows (for the JSON line) and its run for the mean ± sd table."""
    from softlabels.calibration import calibrate

    rows = []
    teachers = {}
    tested: dict[str, dict] = {}  # teacher name -> test metrics
    for name, (loss, ssl, classifier, augment, offset) in TEACHERS.items():
        cfg = TrainConfig(
            dataset=dataset,
            model="cnn1d",
            loss=loss,
            ssl=ssl,
            classifier=classifier,
            augment=augment,
            epochs=epochs,
            batch_size=64,
            optim=OptimConfig(lr=0.05),
            seed=seed * 10 + offset if offset else seed,
        )
        res = train(cfg, out / f"teacher-{name}", device="cpu")
        teachers[name] = res.model_path
        tested[name] = {k: res.metrics[k] for k in KEYS}
        rows.append({"seed": seed, "run": f"teacher {name}", **tested[name]})
    cache = out / "cache.slc"
    dump(
        DumpConfig(
            dataset=dataset,
            teachers=tuple(TeacherSpec(k, v) for k, v in teachers.items()),
            views=views,
            chunk_size=512,
            seed=seed,
        ),
        str(cache),
        device="cpu",
        overwrite=True,
    )
    store_choice(str(cache), virtual_examples(str(cache), "bsce"))
    cal = calibrate(str(cache), "ssd", "lws", overwrite=True, dataset=dataset)
    after = cal.to_dict().get("after") or {}
    if after:
        groups = after.get("groups", {})
        tested["ssd+lws"] = {
            "top1": after.get("top1"),
            "ece": after.get("ece"),
            **{g: groups.get(g) for g in ("many", "medium", "few")},
        }
        rows.append({"seed": seed, "run": "teacher ssd+lws", **tested["ssd+lws"]})
    specs = [
        replace(s, seed=seed, data_seed=seed, epochs=epochs)
        for s in parse_plan(tomllib.loads(plan.read_text()))
    ]
    res = distill(
        str(cache),
        dataset,
        specs,
        out / "students",
        device="cpu",
        plots=False,
        evaluate_teachers=False,
    )
    for s in res.students:
        rows.append(
            {
                "seed": seed,
                "run": s["name"],
                "tau": s["hparams"].get("tau"),
                **{k: s[k] for k in KEYS},
            }
        )
    return rows, seed_run(seed, res.groups_definition, res.students, tested)


def table(runs: list[RunSummary]) -> list[str]:
    """Markdown: one line per teacher and student, mean ± sd over the seeds' runs."""
    return markdown_table([((), aggregate(runs))], lead=("run",))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="mnist1d-lt:imb=100")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--plan", type=Path, default=ROOT / "scripts" / "demo_plan.toml")
    ap.add_argument("--out", type=Path, default=Path("/tmp/softlabels-distill-seeds"))
    args = ap.parse_args()
    rows, runs = [], []
    for seed in args.seeds:
        seed_rows, run = run_seed(
            seed, args.out / f"seed{seed}", args.dataset, args.epochs, args.plan, args.views
        )
        rows += seed_rows
        runs.append(run)
    print("\n".join(table(runs)))
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
