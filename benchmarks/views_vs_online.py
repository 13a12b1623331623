"""Cached students against their online twins (epoch-aligned views; METHODS §13).

    .venv/bin/python benchmarks/views_vs_online.py --seeds 0 1 2 --out /tmp/views-online
    .venv/bin/python benchmarks/views_vs_online.py --dataset mnist1d100-lt --epochs 30 \\
        --replay 1 4 16 30 --topk 0 10 --methods dive bkd --seeds 0 \\
        --teachers /work/runs/testbed/seed{seed} --out /tmp/views-online-100
    .venv/bin/python benchmarks/views_vs_online.py --quick        # smoke run, a minute or two

Per seed s: CE and BSCE teachers (trained here: cnn1d, seed s; or the ``model.pt`` of
``--teachers DIR/teacher-{ce,bsce}``, ``{seed}`` in DIR replaced by s) -> one dump per
``--topk`` kind (0 = dense) with `epochs` epoch-aligned views (view seed s, float16, no
features) -> tune-tau (BSCE teacher, on each cache) -> KD (CE teacher), DiVE (BSCE teacher,
tau auto) and BKD (CE teacher) students (``--methods``) with data seed s, each trained
online (the teacher in the loop on the student's own inputs; once, beside the first kind)
and from each cache replaying only its first V views, V in --replay (V = epochs is the
whole cache: by construction the online student up to the float16 rounding, and for a
sparse cache the top-K rebuild, of the stored logits). Prints a Markdown table of mean ± sd
over the seeds (softlabels report), the dump and distill seconds and bytes per cache, and
writes everything to ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from _table import markdown_table

from softlabels.analysis import store_choice, virtual_examples
from softlabels.engine.optim import OptimConfig
from softlabels.reports import report
from softlabels.students import StudentSpec, distill
from softlabels.teachers import DumpConfig, TeacherSpec, dump
from softlabels.teachers.train import TrainConfig, train

METHODS = {"kd": "ce", "dive": "bsce", "bkd": "ce"}  # method: its teacher
QUICK = {"dataset": "mnist1d100-lt:n_max=20,n_test=5,imb=10", "epochs": 2, "replay": [1, 2]}


def kind_name(k: int) -> str:
    return "dense" if k == 0 else f"top{k}"


def teachers_for(seed: int, out: Path, args: argparse.Namespace) -> dict[str, str]:
    if args.teachers:
        root = Path(args.teachers.replace("{seed}", str(seed)))
        return {loss: str(root / f"teacher-{loss}" / "model.pt") for loss in ("ce", "bsce")}
    # Trained here: only the teachers of --methods.
    teachers = {}
    for loss in sorted({METHODS[m] for m in args.methods}):
        cfg = TrainConfig(dataset=args.dataset, model="cnn1d", loss=loss, epochs=args.epochs,
                          batch_size=64, optim=OptimConfig(lr=0.05), seed=seed)  # fmt: skip
        teachers[loss] = train(cfg, out / f"teacher-{loss}", device="cpu").model_path
    return teachers


def specs_for(kind: str, seed: int, args: argparse.Namespace, replay: list[int], online: bool):
    tag = "" if kind == "dense" else f"-{kind}"
    specs = []
    for method in args.methods:
        common = dict(method=method, teacher=METHODS[method], model="cnn1d",
                      epochs=args.epochs, lr=0.05, batch_size=64, seed=seed,
                      data_seed=seed)  # fmt: skip
        if method == "dive":
            common["tau"] = "auto"
        if online:
            specs.append(StudentSpec(f"{method}-online", online=True, **common))
        specs += [StudentSpec(f"{method}{tag}-V{v}", replay_views=v, **common) for v in replay]
    return specs


def _distill(cache: str, dataset: str, specs: list, out: Path, eval_every: int) -> float:
    t0 = time.perf_counter()
    distill(cache, dataset, specs, out, device="cpu", plots=False, evaluate_teachers=False,
            eval_every=eval_every)  # fmt: skip
    return time.perf_counter() - t0


def run_seed(seed: int, out: Path, args: argparse.Namespace, replay: list[int]) -> dict:
    needed = {METHODS[m] for m in args.methods}
    teachers = {n: p for n, p in teachers_for(seed, out, args).items() if n in needed}
    caches: dict[str, dict[str, Any]] = {}
    for k in args.topk:
        kind = kind_name(k)
        cache = out / ("cache.slc" if kind == "dense" else f"cache-{kind}.slc")
        t0 = time.perf_counter()
        dump(
            DumpConfig(dataset=args.dataset, views=args.epochs, chunk_size=512, seed=seed,
                       features=False, topk=k or None,
                       teachers=tuple(TeacherSpec(n, p) for n, p in teachers.items())),
            str(cache), device="cpu", overwrite=True,
        )  # fmt: skip
        dump_s = time.perf_counter() - t0
        tuned = virtual_examples(str(cache), "bsce") if "bsce" in teachers else None
        if tuned is not None:
            store_choice(str(cache), tuned)
        caches[kind] = {
            "dump_s": dump_s,
            "bytes": sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()),
            "tune_tau": tuned.choice.to_dict() if tuned is not None else None,
            "url": str(cache),
        }
    eval_every = args.eval_every or args.epochs
    jobs = []
    for i, kind in enumerate(caches):
        folder = out / ("students" if kind == "dense" else f"students-{kind}")
        specs = specs_for(kind, seed, args, replay, online=i == 0 and not args.no_online)
        jobs.append((kind, caches[kind]["url"], specs, folder))
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            kind: pool.submit(_distill, url, args.dataset, specs, folder, eval_every)
            for kind, url, specs, folder in jobs
        }
        for kind, f in futures.items():
            caches[kind]["distill_s"] = f.result()
            caches[kind]["students"] = str(jobs[list(futures).index(kind)][3])
    return {"seed": seed, "caches": caches}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="mnist1d-lt:imb=100")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--replay", nargs="+", type=int, default=[1, 4, 16, 40])
    ap.add_argument("--topk", nargs="+", type=int, default=[0], help="cache kinds: 0 = dense")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--teachers", help="folder with teacher-{ce,bsce}/model.pt ({seed}: s)")
    ap.add_argument("--eval-every", type=int, help="default: only the last epoch")
    ap.add_argument("--jobs", type=int, default=1, help="caches distilled at a time")
    ap.add_argument("--quick", action="store_true", help="tiny data, 2 epochs: a smoke run")
    ap.add_argument(
        "--no-online",
        action="store_true",
        help="cached students only (the online twins were run before, e.g. beside dense caches)",
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/softlabels-views-online"))
    args = ap.parse_args()
    if args.quick:
        args.dataset, args.epochs, args.replay = QUICK["dataset"], QUICK["epochs"], QUICK["replay"]
        args.seeds = args.seeds[:1]
    replay = sorted({min(v, args.epochs) for v in args.replay})
    timings = [run_seed(s, args.out / f"seed{s}", args, replay) for s in args.seeds]
    folders = [Path(c["students"]) for t in timings for c in t["caches"].values()]
    rep = report(folders)
    print("\n".join(markdown_table([((), rep)], lead=("run",))))
    print(
        "\n| seed | cache | bytes | dump s | distill s | tune-tau T, p |\n|---|---|---|---|---|---|"
    )
    for t in timings:
        for kind, c in t["caches"].items():
            ch = c["tune_tau"]
            tp = f"{ch['tau']:g}, {ch['power']:g}" if ch else "-"
            print(f"| {t['seed']} | {kind} | {c['bytes']:,} | {c['dump_s']:.1f} "
                  f"| {c['distill_s']:.0f} | {tp} |")  # fmt: skip
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "timings": timings,
              "report": rep.to_dict()}  # fmt: skip
    (args.out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
