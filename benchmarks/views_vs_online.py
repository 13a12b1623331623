"""Cached students against their online twins (epoch-aligned views; METHODS §13).

    .venv/bin/python benchmarks/views_vs_online.py --seeds 0 1 2 --out /tmp/views-online

Per seed s: CE and BSCE teachers (cnn1d, seed s) -> one dump with `epochs` epoch-aligned
views (view seed s, float16) -> tune-tau (BSCE teacher) -> KD (CE teacher), DiVE (BSCE
teacher, tau auto) and BKD (CE teacher) students with data seed s, each trained
online (the teacher in the loop on the student's own inputs) and from the cache replaying
only its first V views, V in --replay (V = epochs is the whole cache: by construction the
online student up to the float16 rounding of the stored logits). Prints a Markdown table
of mean ± sd over the seeds (softlabels report), the dump and distill seconds, and JSON.
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

METHODS = {"kd": "ce", "dive": "bsce", "bkd": "ce"}  # method: its teacher


def run_seed(seed: int, out: Path, dataset: str, epochs: int, replay: list[int]) -> dict:
    teachers = {}
    for loss in ("ce", "bsce"):
        cfg = TrainConfig(dataset=dataset, model="cnn1d", loss=loss, epochs=epochs,
                          batch_size=64, optim=OptimConfig(lr=0.05), seed=seed)  # fmt: skip
        teachers[loss] = train(cfg, out / f"teacher-{loss}", device="cpu").model_path
    cache = out / "cache.slc"
    t0 = time.perf_counter()
    dump(
        DumpConfig(dataset=dataset, views=epochs, chunk_size=512, seed=seed,
                   teachers=tuple(TeacherSpec(k, v) for k, v in teachers.items())),
        str(cache), device="cpu", overwrite=True,
    )  # fmt: skip
    dump_s = time.perf_counter() - t0
    store_choice(str(cache), virtual_examples(str(cache), "bsce"))
    specs = []
    for method, teacher in METHODS.items():
        common = dict(method=method, teacher=teacher, model="cnn1d", epochs=epochs, lr=0.05,
                      batch_size=64, seed=seed, data_seed=seed)  # fmt: skip
        if method == "dive":
            common["tau"] = "auto"
        specs.append(StudentSpec(f"{method}-online", online=True, **common))
        specs += [StudentSpec(f"{method}-V{v}", replay_views=v, **common) for v in replay]
    t0 = time.perf_counter()
    distill(str(cache), dataset, specs, out / "students", device="cpu", plots=False,
            evaluate_teachers=False)  # fmt: skip
    return {"seed": seed, "dump_s": dump_s, "distill_s": time.perf_counter() - t0,
            "cache_bytes": sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", default="mnist1d-lt:imb=100")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--replay", nargs="+", type=int, default=[1, 4, 16, 40])
    ap.add_argument("--out", type=Path, default=Path("/tmp/softlabels-views-online"))
    args = ap.parse_args()
    replay = sorted({min(v, args.epochs) for v in args.replay})
    timings = [
        run_seed(s, args.out / f"seed{s}", args.dataset, args.epochs, replay) for s in args.seeds
    ]
    rep = report([args.out / f"seed{s}" / "students" for s in args.seeds])
    print("\n".join(markdown_table([((), rep)], lead=("run",))))
    print(json.dumps({"timings": timings, "report": rep.to_dict()}))


if __name__ == "__main__":
    main()
