"""Mixed views in the cache (dump --mixup/--cutmix) against plain views, and their online twins.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/mixed_views.py --seeds 0 --epochs 20 \\
        --out /tmp/mixed-views

Per seed s: a BSCE teacher (cnn1d, seed s) -> two dumps with `epochs` epoch-aligned views
(view seed s, float16): plain, and mixed (--mixup/--cutmix/--mix-prob) -> tune-tau on each
-> per cache a DiVE student (tau auto) replaying the cache and its online twin, and a BSCE
student replaying the cache (no teacher; on the mixed cache it trains on the mixed inputs
with lam-mixed labels). Prints a Markdown table (softlabels report), the dump seconds and
bytes of both caches, and JSON.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _table import markdown_table

from softlabels.analysis import store_choice, virtual_examples
from softlabels.engine.optim import OptimConfig
from softlabels.reports import report
from softlabels.students import StudentSpec, distill
from softlabels.teachers import DumpConfig, TeacherSpec, dump
from softlabels.teachers.train import TrainConfig, train


def _bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def run_seed(seed: int, out: Path, dataset: str, epochs: int, mix: dict) -> dict:
    cfg = TrainConfig(dataset=dataset, model="cnn1d", loss="bsce", epochs=epochs,
                      batch_size=64, optim=OptimConfig(lr=0.05), seed=seed)  # fmt: skip
    teacher = train(cfg, out / "teacher", device="cpu").model_path
    timings: dict = {"seed": seed}
    for kind, flags in (("plain", {}), ("mixed", mix)):
        cache = out / f"cache-{kind}.slc"
        t0 = time.perf_counter()
        dump(
            DumpConfig(dataset=dataset, views=epochs, chunk_size=512, seed=seed,
                       teachers=(TeacherSpec("bsce", teacher),), **flags),
            str(cache), device="cpu", overwrite=True,
        )  # fmt: skip
        timings[f"dump_{kind}_s"] = time.perf_counter() - t0
        timings[f"bytes_{kind}"] = _bytes(cache)
        store_choice(str(cache), virtual_examples(str(cache), "bsce"))
        common = dict(teacher="bsce", model="cnn1d", epochs=epochs, lr=0.05, batch_size=64,
                      seed=seed, data_seed=seed)  # fmt: skip
        specs = [
            StudentSpec("dive-cached", method="dive", tau="auto", **common),
            StudentSpec("dive-online", method="dive", tau="auto", online=True, **common),
            StudentSpec("bsce-cached", method="bsce", **common),
        ]
        t0 = time.perf_counter()
        distill(str(cache), dataset, specs, out / f"students-{kind}", device="cpu", plots=False,
                evaluate_teachers=False)  # fmt: skip
        timings[f"distill_{kind}_s"] = time.perf_counter() - t0
    return timings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="mnist1d-lt:imb=100")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--mixup", type=float, default=0.4)
    ap.add_argument("--cutmix", type=float, default=1.0)
    ap.add_argument("--mix-prob", type=float, default=0.5)
    ap.add_argument("--out", type=Path, default=Path("/tmp/softlabels-mixed-views"))
    args = ap.parse_args()
    mix = {"mixup": args.mixup, "cutmix": args.cutmix, "mix_prob": args.mix_prob}
    timings = [
        run_seed(s, args.out / f"seed{s}", args.dataset, args.epochs, mix) for s in args.seeds
    ]
    for kind in ("plain", "mixed"):
        rep = report([args.out / f"seed{s}" / f"students-{kind}" for s in args.seeds])
        print(f"### {kind} cache")
        print("\n".join(markdown_table([((), rep)], lead=("run",))))
        print(json.dumps({"cache": kind, "report": rep.to_dict()}))
    print(json.dumps({"timings": timings}))


if __name__ == "__main__":
    main()
