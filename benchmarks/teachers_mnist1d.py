"""Real-data check of issue 3: BSCE vs CE teachers on mnist1d-lt:imb=100 over seeds.

    .venv/bin/python benchmarks/teachers_mnist1d.py --seeds 0 1 2 --epochs 40

Prints a Markdown table (mean ± sd over seeds) and one JSON line with every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

from _table import cells, seed_run

from softlabels.engine.optim import OptimConfig
from softlabels.reports import aggregate
from softlabels.teachers.train import TrainConfig, train

KEYS = ("top1", "many", "medium", "few", "ece")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="mnist1d-lt:imb=100")
    ap.add_argument("--model", default="cnn1d")
    ap.add_argument("--losses", nargs="+", default=["ce", "bsce"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    runs = []
    for loss in args.losses:
        for seed in args.seeds:
            cfg = TrainConfig(
                dataset=args.dataset,
                model=args.model,
                loss=loss,
                epochs=args.epochs,
                batch_size=args.batch_size,
                optim=OptimConfig(lr=args.lr),
                seed=seed,
            )
            with tempfile.TemporaryDirectory() as tmp:
                res = train(cfg, tmp, device="cpu")
            runs.append(
                {
                    "loss": loss,
                    "seed": seed,
                    "seconds": res.seconds,
                    **{k: res.metrics[k] for k in KEYS},
                }
            )
    print("\n".join(table(runs)))
    print(json.dumps(runs))


def table(runs: list[dict]) -> list[str]:
    """Markdown: one line per loss, mean ± sd over seeds (each seed a run of the report)."""
    seeds = dict.fromkeys(r["seed"] for r in runs)
    rep = aggregate(
        [
            seed_run(s, "absolute", teachers={r["loss"]: r for r in runs if r["seed"] == s})
            for s in seeds
        ]
    )
    lines = ["| loss | " + " | ".join(rep.metric_keys) + " | s/run |"]
    lines.append("|---" * (len(rep.metric_keys) + 2) + "|")
    for row in rep.rows:
        secs = statistics.mean(r["seconds"] for r in runs if r["loss"] == row.name)
        lines.append(
            f"| {row.name} | " + " | ".join(cells(row, rep.metric_keys)) + f" | {secs:.1f} |"
        )
    return lines


if __name__ == "__main__":
    main()
