"""Real-data check of issue 3: BSCE vs CE teachers on mnist1d-lt:imb=100 over seeds.

    .venv/bin/python benchmarks/teachers_mnist1d.py --seeds 0 1 2 --epochs 40

Prints a Markdown table (mean ± sd over seeds) and one JSON line with every run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile

from _table import mean_sd_cells

from softlabels.engine.optim import OptimConfig
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
    print("| loss | " + " | ".join(KEYS) + " | s/run |")
    print("|---" * (len(KEYS) + 2) + "|")
    for loss in args.losses:
        rs = [r for r in runs if r["loss"] == loss]
        cells = mean_sd_cells(rs, KEYS)
        secs = statistics.mean(r["seconds"] for r in rs)
        print(f"| {loss} | " + " | ".join(cells) + f" | {secs:.1f} |")
    print(json.dumps(runs))


if __name__ == "__main__":
    main()
