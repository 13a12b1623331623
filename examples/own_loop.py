"""Distil a student from a softlabels cache with a plain PyTorch loop.

    python examples/own_loop.py --cache runs/mnist1d.slc --dataset mnist1d-lt:imb=100 \\
        --teacher bsce --epochs 10

Each batch holds the exact views the teacher labelled and its cached logits of them: with
the same seed and settings this trains, to the bit on the CPU, the student of `softlabels
distill CACHE --method kd --model mlp` with `schedule = "constant"` in its plan.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from torch.utils.data import DataLoader

import softlabels
from softlabels.losses import MixedLabels, kd
from softlabels.metrics import evaluate_logits
from softlabels.models import create_model, shape_kwargs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="KD from a softlabels cache, in a loop of your own.")
    p.add_argument("--cache", required=True, help="cache made by `softlabels dump --views K`")
    p.add_argument("--dataset", required=True, help="the dataset spec the cache was made from")
    p.add_argument("--teacher", required=True, help="a teacher of the cache")
    p.add_argument("--model", default="mlp")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--tau", type=float, default=4.0)
    p.add_argument("--alpha", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=0, help="init, sampling (and random views)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--save", help="write the student's state_dict to this file")
    args = p.parse_args(argv)

    data = softlabels.CachedDataset(args.dataset, args.cache, teacher=args.teacher)
    ds = data.dataset  # the softlabels dataset: its test split, input shape, class counts
    batches = softlabels.CachedBatchSampler(data, args.batch_size, seed=args.seed)
    loader = DataLoader(data, batch_sampler=batches, num_workers=args.workers)
    shape = tuple(ds.input_shape)
    arch = shape_kwargs(args.model, shape)  # in_features for an mlp
    model = create_model(
        args.model, num_classes=ds.num_classes, in_channels=shape[0], seed=args.seed, **arch
    )
    decay = [w for w in model.parameters() if w.ndim > 1]  # no weight decay on biases
    other = [w for w in model.parameters() if w.ndim <= 1]
    groups = [{"params": decay, "weight_decay": 5e-4}, {"params": other, "weight_decay": 0.0}]
    optimizer = torch.optim.SGD(groups, lr=args.lr, momentum=0.9)

    for epoch in range(args.epochs):
        data.set_epoch(epoch)  # replay view `epoch mod V`: what the teacher saw
        batches.set_epoch(epoch)  # the order `softlabels distill` draws in this epoch
        model.train()
        # input, label, the teacher's logits of x, row (+ partner label, lam: mixed views)
        for x, y, t, _rows, *mixed in loader:
            labels = MixedLabels(y, mixed[0], mixed[1].float()) if mixed else y
            z = model(x)
            loss = kd(
                student_logits=z, teacher_logits=t, labels=labels, tau=args.tau, alpha=args.alpha
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}: last loss {loss.item():.4f}")

    model.eval()
    with torch.no_grad():
        logits = model(ds.clean(ds.test.load(np.arange(len(ds.test))))).numpy()
    m = evaluate_logits(logits, ds.test.labels, ds.class_counts("train"))
    thirds = m["groups"]["definition"] == "thirds"  # when a shot group is empty
    names = ("head", "middle", "tail") if thirds else ("many", "medium", "few")
    shots = ", ".join(f"{k} {100 * m['groups'][k]:.2f}" for k in names)
    print(f"balanced top-1 {100 * m['top1']:.2f} % ({shots})")
    if args.save:
        torch.save(model.state_dict(), args.save)


if __name__ == "__main__":
    main()
