"""Timing of a ResNet-32 DiVE student on a CIFAR-100-LT-shaped synthetic set.

    .venv/bin/python benchmarks/bench_resnet_dive.py --device cuda --epochs 5 --out $OUT
    .venv/bin/python benchmarks/bench_resnet_dive.py --device cpu --epochs 1 --quick

Writes synthetic CIFAR-100 python pickle files (the real format: 500 train / 100 test
images per class, uint8 noise around a per-class colour pattern, so a teacher has
something to learn) under ``--data``, takes ``cifar100-lt:imb=100`` of them (10,847
training images, 500 ... 5 per class), dumps a ResNet-32 teacher with fresh weights (the
timing does not depend on them) with ``--views`` views, and trains a ResNet-32 DiVE
student (batch 128) for ``--epochs`` epochs through ``softlabels distill``. Reports the
median epoch time and the projected time of the 200 epochs of the paper's schedule, as
JSON (stdout and ``--out/resnet_dive.json``). ``--quick``: 20 / 4 images per class.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import time
from pathlib import Path

import numpy as np


def write_cifar100(root: Path, per_class: int, test_per_class: int, seed: int = 0) -> Path:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pattern = rng.integers(0, 256, size=(100, 3072), dtype=np.int64)

    def split(n: int) -> dict[bytes, object]:
        labels = np.repeat(np.arange(100), n)
        noise = rng.integers(-64, 64, size=(len(labels), 3072))
        data = np.clip(pattern[labels] + noise, 0, 255).astype(np.uint8)
        return {b"data": data, b"fine_labels": labels.tolist()}

    for name, n in (("train", per_class), ("test", test_per_class)):
        with open(folder / name, "wb") as f:
            pickle.dump(split(n), f)
    with open(folder / "meta", "wb") as f:
        pickle.dump({b"fine_label_names": [f"c{i}".encode() for i in range(100)]}, f)
    return root


def main() -> None:
    from softlabels.students import StudentSpec, distill
    from softlabels.teachers import DumpConfig, TeacherSpec, dump

    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--views", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", type=Path, default=Path("/tmp/softlabels-cifar100-synthetic"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/softlabels-resnet-dive"))
    args = ap.parse_args()
    per_class, test = (20, 4) if args.quick else (500, 100)
    root = write_cifar100(args.data / ("quick" if args.quick else "full"), per_class, test)
    spec = f"cifar100-lt:root={root},imb={4 if args.quick else 100}"
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "cache.slc"
    t0 = time.perf_counter()
    dump(DumpConfig(dataset=spec, teachers=(TeacherSpec("t", "resnet32"),), views=args.views,
                    chunk_size=2048), str(cache), device=args.device, overwrite=True)  # fmt: skip
    dump_s = time.perf_counter() - t0
    student = StudentSpec("dive", method="dive", teacher="t", model="resnet32",
                          epochs=args.epochs, batch_size=args.batch_size, lr=0.1)  # fmt: skip
    res = distill(str(cache), spec, [student], args.out / "run", device=args.device,
                  plots=False, evaluate_teachers=False, eval_every=10**6)  # fmt: skip
    import pyarrow.parquet as pq

    seconds = pq.read_table(args.out / "run" / "metrics.parquet").column("seconds").to_pylist()
    per_epoch = statistics.median(seconds[1:] if len(seconds) > 1 else seconds)
    result = {
        "dataset": spec,
        "device": args.device,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "dump_seconds": dump_s,
        "epoch_seconds": seconds,
        "median_epoch_seconds": per_epoch,
        "projected_200_epochs_seconds": 200 * per_epoch,
        "top1": res.students[0]["top1"],
    }
    (args.out / "resnet_dive.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
