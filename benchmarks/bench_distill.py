"""Distill throughput (issue 5): cached targets vs plain CE, online KD, and one pass for many.

    .venv/bin/python benchmarks/bench_distill.py                       # CPU, defaults
    .venv/bin/python benchmarks/bench_distill.py --device cuda         # on a GPU
    .venv/bin/python benchmarks/bench_distill.py --profile             # + torch.profiler tables

Setup, once: a heavier teacher (``cnn1d`` with ``--teacher-kwargs``, by default 64 channels
and a 256-d feature against the student's 32 and 128; fresh weights: timing does not depend
on their values) is saved with ``save_checkpoint`` and
dumped with ``softlabels.teachers.dump`` into a temporary clean cache (``views = 0``); its
logits are loaded with ``load_targets``. Every variant trains through the library's own loop
(``engine.loop.fit``) over the same ``BatchStream`` (instance sampler, seeded augmentation,
same seed, so the same batches in the same order), with evaluation off. The epoch time is
the loop's own ``seconds`` (batch creation + all steps of an epoch).

1. ``ce``: one student, the ``ce`` step of ``students.methods.make_step``;
   ``kd``: the same student with the ``kd`` step and the cached clean-view targets.
   Target: t_kd / t_ce <= 1.05.
2. ``online``: the same student, a step that runs the teacher (eval mode, ``no_grad``) on
   the batch's (augmented) input every step, then the same ``kd`` loss. The student's own
   augmentation with a clean-view cache is the semantic the cached run has too, so the
   online teacher must see the same augmented batch: that is the fair comparison.
   Reported beside the ideal ``1 + t_teacher_fwd / t_student_step`` (per batch, medians over
   many batches of the same size, measured apart); target: measured >= 90 % of the ideal.
3. ``multi4``: four ``kd`` students (init seeds 0..3) in one ``fit`` over the stream;
   ``sep4``: the same four, one ``fit`` each (epoch times summed).
   Target: t_multi4 / t_sep4 <= 0.9 on a CPU, <= 0.6 on a GPU.

After one warm-up of each variant, the variants run ``--repeats`` times in rotated order
(so none is always first or last); per variant the median epoch time over repeats (each
repeat's value is the median over its ``--epochs`` epochs). Every figure is reported on two
clocks: wall time, and the CPU time of this process (all its threads), which on a CPU shared
with other jobs is far less disturbed by them (with ``--threads 1`` it is the wall time of
an idle machine); on a GPU only wall time means anything. Ratios are given as ratio of
medians (the headline), ratio of minima and median of the per-repeat ratios.

The ideal of (2) takes ``t_teacher_fwd`` and ``t_student_step`` as medians over the
stream's own batches, timed apart but interleaved batch by batch (teacher alone; ce, kd and
online students' whole steps as ``fit`` runs them). From the same interleaved timings come
*paired* estimates of the ratios, (batch creation + step) / (batch creation + step), which a
load change on a shared machine hits on both sides alike. The per-batch pieces (batch
creation, augmentation, target gather, student forward/backward, the two losses, optimiser;
``*_1b``: on one batch, round-robin) explain where the time goes; ``--profile`` adds
torch.profiler tables of one epoch of ce, kd and online. A Markdown summary, then one JSON
line with everything.

``--variants ce kd`` runs only those two in the repeats (the kd/ce ratio mode: more repeats
in the same time, still interleaved in rotated order); the per-batch pieces and paired
estimates are measured as always, and the ratios of variants not run are left out.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_distill.py --threads 1 \
        --variants ce kd --repeats 30                                # kd/ce ratio mode

On a small shared CPU, prefer ``--threads 1``: with two intra-op threads on two busy cores,
every parallel region waits for a descheduled thread and epochs vary 10-20x.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

import softlabels
from softlabels.data import load_dataset
from softlabels.device import resolve_device
from softlabels.engine.inputs import Batch, BatchStream
from softlabels.engine.loop import Student, fit
from softlabels.engine.optim import OptimConfig, lr_factor
from softlabels.engine.samplers import make_sampler
from softlabels.losses import get_loss
from softlabels.models import create_model, load_checkpoint, save_checkpoint
from softlabels.students.plan import StudentSpec
from softlabels.students.steps import make_step, resolve_hparams
from softlabels.students.targets import TeacherTargets, load_targets
from softlabels.teachers import DumpConfig, TeacherSpec, dump

VARIANTS = ("ce", "kd", "online", "multi4", "sep4")
CLOCKS = ("wall", "cpu")
BATCH_KEYS = ("batch_wall", "batch_cpu")  # in-loop batch creation, per batch


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def p10(values: list[float]) -> float:
    """10th percentile: the least disturbed calls on a shared machine."""
    return float(np.percentile(values, 10))


def median_time(fn: Callable[[], Any], dev: torch.device, n: int, warm: int = 5) -> float:
    """Median seconds of ``fn()`` over ``n`` calls (after ``warm`` calls), synced."""
    for _ in range(warm):
        fn()
    sync(dev)
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class TimedStream:
    """A BatchStream seen through a stopwatch: the time ``fit`` spends waiting for batches
    (sampling, loading, augmentation, labels), measured inside the training loop."""

    def __init__(self, inner: BatchStream) -> None:
        self.inner = inner
        self.device = inner.device
        self.wall = 0.0
        self.cpu = 0.0
        self.batches = 0

    def __getattr__(self, name: str) -> Any:  # everything else: the stream's own
        return getattr(self.inner, name)

    def epoch(self, epoch: int) -> Iterator[Batch]:
        it = self.inner.epoch(epoch)
        while True:
            t0, c0 = time.perf_counter(), time.process_time()
            try:
                batch = next(it)
            except StopIteration:
                return
            sync(self.device)
            self.wall += time.perf_counter() - t0
            self.cpu += time.process_time() - c0
            self.batches += 1
            yield batch


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dev = resolve_device(args.device)
        self.ds = load_dataset(args.dataset)
        self.in_channels = int(self.ds.input_shape[0])
        self.counts = torch.as_tensor(self.ds.class_counts("train"), device=self.dev)
        self.tmp = tempfile.mkdtemp(prefix="bench-distill-")
        # Teacher: a heavier cnn1d, saved as a checkpoint and dumped into a clean cache.
        teacher = create_model(
            args.teacher,
            num_classes=self.ds.num_classes,
            in_channels=self.in_channels,
            seed=123,
            **json.loads(args.teacher_kwargs),
        )
        self.teacher_path = save_checkpoint(os.path.join(self.tmp, "teacher.pt"), teacher)
        t0 = time.perf_counter()
        cfg = DumpConfig(
            dataset=args.dataset,
            teachers=(TeacherSpec("big", str(self.teacher_path)),),
            views=0,
            features=False,
        )
        self.dump_result = dump(cfg, os.path.join(self.tmp, "c.slc"), device=str(self.dev))
        self.dump_seconds = time.perf_counter() - t0
        self.cache = softlabels.open_cache(self.dump_result.url)
        self.targets: TeacherTargets = load_targets(self.cache, "big", self.dev)
        self.teacher, _ = load_checkpoint(self.teacher_path, map_location=self.dev)
        self.teacher.eval()
        self.teacher_params = sum(p.numel() for p in self.teacher.parameters())
        self.stream = BatchStream(
            self.ds,
            make_sampler("instance", self.ds.train.labels, self.ds.num_classes, args.data_seed),
            batch_size=args.batch_size,
            device=self.dev,
            augment=True,
            seed=args.data_seed,
            workers=args.workers,
        )
        self.steps = self.stream.steps_per_epoch()
        self.kd_spec = StudentSpec(
            name="kd", model=args.student, method="kd", batch_size=args.batch_size
        )
        self.ce_spec = StudentSpec(
            name="ce", model=args.student, method="ce", batch_size=args.batch_size
        )
        self.kd_hp = resolve_hparams(self.kd_spec, None)
        self.ce_hp = resolve_hparams(self.ce_spec, None)
        self.optim = OptimConfig(
            optimizer=self.kd_spec.optimizer,
            lr=self.kd_spec.lr,
            momentum=self.kd_spec.momentum,
            weight_decay=self.kd_spec.weight_decay,
            schedule=self.kd_spec.schedule,
        )
        self.student_params = sum(p.numel() for p in self.new_model(0).parameters())

    def close(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ students
    def new_model(self, seed: int) -> torch.nn.Module:
        return create_model(
            self.args.student,
            num_classes=self.ds.num_classes,
            in_channels=self.in_channels,
            seed=seed,
            **json.loads(self.args.student_kwargs),
        ).to(self.dev)

    def ce_step(self) -> Callable[[torch.nn.Module, Batch], dict[str, torch.Tensor]]:
        return make_step(self.ce_spec, self.ce_hp, self.counts, None)

    def kd_step(self) -> Callable[[torch.nn.Module, Batch], dict[str, torch.Tensor]]:
        return make_step(self.kd_spec, self.kd_hp, self.counts, self.targets)

    def online_step(self) -> Callable[[torch.nn.Module, Batch], dict[str, torch.Tensor]]:
        fn, hp, counts, teacher = get_loss("kd").fn, self.kd_hp, self.counts, self.teacher

        def step(model: torch.nn.Module, batch: Batch) -> dict[str, torch.Tensor]:
            # no_grad, not inference_mode: the kd loss saves the target for its backward.
            with torch.no_grad():
                zt = teacher(batch.x).float()
            z = model(batch.x).float()
            loss = fn(
                student_logits=z, teacher_logits=zt, labels=batch.y, class_counts=counts, **hp
            )
            return {"loss": loss}

        return step

    def student(self, name: str, seed: int, step: Callable[..., Any]) -> Student:
        return Student(
            name=name,
            model=self.new_model(seed),
            optim=self.optim,
            epochs=self.args.epochs,
            step_fn=step,
            evaluate_fn=None,
            out_dir=None,
        )

    def run_fit(self, students: list[Student], epochs: int) -> dict[str, list[float]]:
        """Per-epoch seconds of one fit of ``students``: wall (the loop's own measurement)
        and CPU time of this process (all its threads; the fit's total over ``epochs``);
        plus the per-batch seconds spent in the stream inside the loop (``batch_*``)."""
        for s in students:
            s.epochs = epochs
        stream = TimedStream(self.stream)
        sync(self.dev)
        c0 = time.process_time()
        fit(students, stream)  # type: ignore[arg-type]  # duck-typed BatchStream
        sync(self.dev)
        cpu = (time.process_time() - c0) / epochs
        for s in students:
            assert s.diverged is None, (s.name, s.diverged)
        n = max(1, stream.batches)
        return {
            "wall": [r["seconds"] for r in students[0].history],
            "cpu": [cpu] * epochs,
            "batch_wall": [stream.wall / n] * epochs,
            "batch_cpu": [stream.cpu / n] * epochs,
        }

    def variant(self, name: str, epochs: int) -> dict[str, float]:
        """Median epoch seconds (wall, cpu) of one run of a variant (sep4: four fits summed)."""
        if name == "ce":
            res = self.run_fit([self.student("ce", 0, self.ce_step())], epochs)
        elif name == "kd":
            res = self.run_fit([self.student("kd", 0, self.kd_step())], epochs)
        elif name == "online":
            res = self.run_fit([self.student("online", 0, self.online_step())], epochs)
        elif name == "multi4":
            students = [self.student(f"kd{i}", i, self.kd_step()) for i in range(4)]
            res = self.run_fit(students, epochs)
        elif name == "sep4":
            per = [
                self.run_fit([self.student(f"kd{i}", i, self.kd_step())], epochs) for i in range(4)
            ]
            res = {
                clock: [sum(x) for x in zip(*(r[clock] for r in per), strict=True)]
                for clock in CLOCKS
            } | {k: [statistics.mean(r[k][0] for r in per)] for k in BATCH_KEYS}
        else:
            raise ValueError(name)
        return {k: statistics.median(res[k]) for k in CLOCKS + BATCH_KEYS}

    # ------------------------------------------------------------------ pieces
    def pieces(self, n: int) -> dict[str, dict[str, float]]:
        """Per-batch seconds of the parts of a step: medians over ``n`` rounds on one batch.

        The pieces are timed round-robin (one call of each per round), so a change in the
        machine's load hits them all alike.
        """
        dev = self.dev
        batch = next(iter(self.stream.epoch(0)))
        raw = self.stream._load(batch.rows)
        teacher = self.teacher
        kd_fn, ce_fn = get_loss("kd").fn, get_loss("ce").fn
        zt = self.targets.logits_for(batch.rows, batch.view)

        def full_step(label: str, fn: Any) -> Callable[[], None]:
            # What fit does per student and batch: lr set, step, finite check, update.
            s = self.student(label, 0, fn)
            s.model.train()
            model, opt = s.model, s.optimizer
            assert opt is not None

            def run() -> None:
                f = lr_factor(0, 10 * self.steps, self.steps, self.optim)
                for g in opt.param_groups:
                    g["lr"] = self.optim.lr * f
                loss = fn(model, batch)["loss"]
                bool(torch.isfinite(loss))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            return run

        # The kd step split up (one model): forward, forward + loss + backward, loss alone.
        split = self.student("split", 0, self.kd_step())
        model, opt = split.model, split.optimizer
        assert opt is not None
        model.train()

        def fwd_bwd(
            loss_fn: Any, hp: dict[str, Any], target: torch.Tensor | None
        ) -> Callable[[], None]:
            def run() -> None:
                z = model(batch.x).float()
                kw = {"student_logits": z, "labels": batch.y, "class_counts": self.counts, **hp}
                if target is not None:
                    kw["teacher_logits"] = target
                opt.zero_grad(set_to_none=True)
                loss_fn(**kw).backward()

            return run

        z = model(batch.x).float().detach().requires_grad_(True)

        def loss_only(
            loss_fn: Any, hp: dict[str, Any], target: torch.Tensor | None
        ) -> Callable[[], None]:
            def run() -> None:
                kw = {"student_logits": z, "labels": batch.y, "class_counts": self.counts, **hp}
                if target is not None:
                    kw["teacher_logits"] = target
                loss_fn(**kw).backward()

            return run

        def teacher_fwd() -> None:
            with torch.no_grad():
                teacher(batch.x)

        def student_fwd() -> None:
            with torch.no_grad():
                model(batch.x)

        fns: dict[str, Callable[[], Any]] = {
            "batch_augment": lambda: self.ds.augment(raw, batch.seeds, strength="standard"),
            "gather": lambda: self.targets.logits_for(batch.rows, batch.view),
            "teacher_fwd_1b": teacher_fwd,
            "step_ce_1b": full_step("ce", self.ce_step()),
            "step_kd_1b": full_step("kd", self.kd_step()),
            "step_online_1b": full_step("online", self.online_step()),
            "student_fwd_nograd": student_fwd,
            "student_fwd_bwd_ce": fwd_bwd(ce_fn, self.ce_hp, None),
            "student_fwd_bwd_kd": fwd_bwd(kd_fn, self.kd_hp, zt),
            "loss_ce_fwd_bwd": loss_only(ce_fn, self.ce_hp, None),
            "loss_kd_fwd_bwd": loss_only(kd_fn, self.kd_hp, zt),
            "optimizer_step": opt.step,
        }
        wall: dict[str, list[float]] = {k: [] for k in fns}
        cpu: dict[str, list[float]] = {k: [] for k in fns}
        for i in range(n + 5):
            for key, fn in fns.items():
                sync(dev)
                t0, c0 = time.perf_counter(), time.process_time()
                fn()
                sync(dev)
                if i >= 5:  # the first rounds warm up
                    wall[key].append(time.perf_counter() - t0)
                    cpu[key].append(time.process_time() - c0)
        out = {
            "wall": {k: statistics.median(v) for k, v in wall.items()},
            "cpu": {k: statistics.median(v) for k, v in cpu.items()},
            "wall_p10": {k: p10(v) for k, v in wall.items()},
            "cpu_p10": {k: p10(v) for k, v in cpu.items()},
        }

        # Batch creation: whole epochs of the stream with no training, per batch.
        def stream_epoch() -> None:
            for _ in self.stream.epoch(1):
                pass

        c0 = time.process_time()
        reps = max(3, n // 40)
        out["wall"]["batch"] = median_time(stream_epoch, dev, reps, warm=1) / self.steps
        out["cpu"]["batch"] = (time.process_time() - c0) / ((reps + 1) * self.steps)
        out["wall_p10"]["batch"] = out["wall"]["batch"]
        out["cpu_p10"]["batch"] = out["cpu"]["batch"]
        return out

    def per_batch(self, epochs: int, rounds: int) -> dict[str, dict[str, float]]:
        """Per-batch seconds over the stream's own batches (medians over all of them).

        ``teacher_fwd``: the teacher alone (eval, ``no_grad``) on each batch's input;
        ``step_ce`` / ``step_kd`` / ``step_online``: a student's whole step as ``fit`` runs
        it (lr set, step function, finite check, backward, optimiser), each with its own
        student. The four are timed one after the other (rotated order) on each batch of
        ``epochs`` epochs, ``rounds`` times, so load changes on a shared machine hit all
        alike: the paired estimates of the ratios come from these.
        """
        dev = self.dev
        teacher = self.teacher

        def teacher_pass(batch: Batch) -> None:
            with torch.no_grad():
                teacher(batch.x)

        def step_pass(fn: Any) -> Callable[[Batch], None]:
            s = self.student("pb", 0, fn)
            s.model.train()
            model, opt = s.model, s.optimizer
            assert opt is not None
            total = epochs * self.steps

            def run(batch: Batch) -> None:
                f = lr_factor(batch.epoch * self.steps + batch.step, total, self.steps, self.optim)
                for g in opt.param_groups:
                    g["lr"] = self.optim.lr * f
                loss = fn(model, batch)["loss"]
                bool(torch.isfinite(loss))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            return run

        keys = ("teacher_fwd", "step_ce", "step_kd", "step_online")
        wall: dict[str, list[float]] = {k: [] for k in keys}
        cpu: dict[str, list[float]] = {k: [] for k in keys}
        for _ in range(rounds):
            fns = {
                "teacher_fwd": teacher_pass,
                "step_ce": step_pass(self.ce_step()),
                "step_kd": step_pass(self.kd_step()),
                "step_online": step_pass(self.online_step()),
            }
            for e in range(epochs):
                for batch in self.stream.epoch(e):
                    # Interleaved per batch, in rotated order: the same load for all.
                    k = batch.step % len(keys)
                    for key in keys[k:] + keys[:k]:
                        fn = fns[key]
                        sync(dev)
                        t0, c0 = time.perf_counter(), time.process_time()
                        fn(batch)
                        sync(dev)
                        wall[key].append(time.perf_counter() - t0)
                        cpu[key].append(time.process_time() - c0)
        return {
            "wall": {k: statistics.median(v) for k, v in wall.items()},
            "cpu": {k: statistics.median(v) for k, v in cpu.items()},
            "wall_p10": {k: p10(v) for k, v in wall.items()},
            "cpu_p10": {k: p10(v) for k, v in cpu.items()},
        }

    def profile(self) -> dict[str, str]:
        """torch.profiler tables (CPU time by op) of one epoch of ce, kd and online."""
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.dev.type == "cuda" else [])
        tables = {}
        for name, step in (
            ("ce", self.ce_step()),
            ("kd", self.kd_step()),
            ("online", self.online_step()),
        ):
            s = self.student(name, 0, step)
            with profile(activities=acts) as prof:
                self.run_fit([s], 1)
            tables[name] = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
        return tables


def machine_info(dev: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "sched_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "device": str(dev),
        "cpu": platform.processor() or platform.machine(),
        "loadavg_start": os.getloadavg(),
    }
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist1d-lt:imb=100,n_max=2000")
    p.add_argument("--student", default="cnn1d", help="student architecture (registry name)")
    p.add_argument("--teacher", default="cnn1d", help="teacher architecture (registry name)")
    p.add_argument(
        "--student-kwargs", default="{}", help="JSON keyword arguments of the student model"
    )
    p.add_argument(
        "--teacher-kwargs",
        default='{"channels": 64, "hidden": 256}',
        help="JSON keyword arguments of the teacher model (default: a cnn1d 4x the convs)",
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=3, help="epochs per fit (median taken)")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--pieces-n", type=int, default=200, help="calls per per-batch timing")
    p.add_argument(
        "--per-batch-epochs", type=int, default=2, help="epochs of batches per ideal timing pass"
    )
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--profile", action="store_true", help="print torch.profiler tables")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=VARIANTS,
        default=list(VARIANTS),
        help="variants timed in the repeats (ce kd: the kd/ce ratio mode)",
    )
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t_start = time.perf_counter()
    bench = Bench(args)
    dev = bench.dev
    info = machine_info(dev)
    try:
        print(
            f"dataset {args.dataset}: N={len(bench.ds.train)}, {bench.steps} steps/epoch of "
            f"{args.batch_size}; student {args.student} {args.student_kwargs} "
            f"({bench.student_params} params), "
            f"teacher {args.teacher} {args.teacher_kwargs} "
            f"({bench.teacher_params} params); device {dev}; "
            f"targets resident={bench.targets.resident}",
            flush=True,
        )
        # Warm-up: each variant once (one epoch), then the per-batch pieces.
        variants = tuple(v for v in VARIANTS if v in args.variants)
        for name in variants:
            bench.variant(name, 1)
        pieces = bench.pieces(args.pieces_n)
        per_batch = bench.per_batch(args.per_batch_epochs, 1)
        times: dict[str, dict[str, list[float]]] = {
            c: {v: [] for v in variants} for c in CLOCKS + BATCH_KEYS
        }
        for r in range(args.repeats):
            k = r % len(variants)
            order = variants[k:] + variants[:k]
            for name in order:
                res = bench.variant(name, args.epochs)
                for c in CLOCKS + BATCH_KEYS:
                    times[c][name].append(res[c])
            print(
                f"repeat {r + 1}/{args.repeats}: "
                + ", ".join(
                    f"{v} {times['wall'][v][-1]:.3f}s (cpu {times['cpu'][v][-1]:.3f}s)"
                    for v in variants
                )
                + f"  (load {os.getloadavg()[0]:.2f})",
                flush=True,
            )
        # Pieces again after the repeats (the machine may have changed); keep both.
        pieces_after = bench.pieces(args.pieces_n)
        per_batch_after = bench.per_batch(args.per_batch_epochs, 1)
        tables = bench.profile() if args.profile else {}
    finally:
        bench.close()

    multi_target = 0.6 if dev.type == "cuda" else 0.9
    summary = {
        c: summarise(
            times[c],
            pieces[c] | per_batch[c],
            pieces_after[c] | per_batch_after[c],
            bench.steps,
            multi_target,
            times[f"batch_{c}"],
            pieces[f"{c}_p10"] | per_batch[f"{c}_p10"],
            pieces_after[f"{c}_p10"] | per_batch_after[f"{c}_p10"],
        )
        for c in CLOCKS
    }
    result = {
        "bench": "distill",
        "args": vars(args),
        "machine": info,
        "loadavg_end": os.getloadavg(),
        "n_train": len(bench.ds.train),
        "steps_per_epoch": bench.steps,
        "student_params": bench.student_params,
        "teacher_params": bench.teacher_params,
        "targets_resident": bench.targets.resident,
        "dump_seconds": bench.dump_seconds,
        "epoch_seconds": times,
        "pieces_before": pieces,
        "pieces_after": pieces_after,
        "per_batch_before": per_batch,
        "per_batch_after": per_batch_after,
        "summary": summary,
        "total_seconds": time.perf_counter() - t_start,
    }
    for c in CLOCKS:
        if c == "cpu" and dev.type == "cuda":
            continue  # process CPU time says little about a GPU run
        print_summary(c, summary[c], multi_target)
    for name, table in tables.items():
        print(f"\n### torch.profiler, one epoch of {name}\n{table}")
    print(json.dumps(result))


def summarise(
    times: dict[str, list[float]],
    before: dict[str, float],
    after: dict[str, float],
    steps: int,
    multi_target: float,
    batch_in_loop: dict[str, list[float]],
    before_p10: dict[str, float],
    after_p10: dict[str, float],
) -> dict[str, Any]:
    """Medians, minima, pairwise ratios and the three targets for one clock."""
    med = {v: statistics.median(t) for v, t in times.items()}
    mins = {v: min(t) for v, t in times.items()}

    def pairwise(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    pc = {k: statistics.median([before[k], after[k]]) for k in before}
    t_teacher, t_step = pc["teacher_fwd"], pc["step_kd"]
    ideal = 1 + t_teacher / t_step
    # Paired estimates from the interleaved per-batch timings: an epoch is batch creation
    # plus one step per batch.
    b = pc["batch"]
    paired = {
        "kd_ce": (b + pc["step_kd"]) / (b + pc["step_ce"]),
        "online_kd": (b + pc["step_online"]) / (b + pc["step_kd"]),
        "multi4_sep4_model": (b + 4 * pc["step_kd"]) / (4 * b + 4 * pc["step_kd"]),
    }
    # The same from the 10th percentiles of the per-batch timings (least disturbed).
    q = {k: min(before_p10[k], after_p10[k]) for k in before_p10}
    paired_p10 = {
        "kd_ce": (b + q["step_kd"]) / (b + q["step_ce"]),
        "online_kd": (b + q["step_online"]) / (b + q["step_kd"]),
        "ideal_online_kd": 1 + q["teacher_fwd"] / q["step_kd"],
    }
    in_loop = {v: statistics.median(t) for v, t in batch_in_loop.items()}
    out: dict[str, Any] = {
        "median": med,
        "min": mins,
        "pieces": pc,
        "batch_in_loop": in_loop,
        "pieces_p10": q,
        "paired_p10": paired_p10,
    }
    ran = set(times)  # ratios of variants that were not run are left out
    if {"kd", "ce"} <= ran:
        r_kd = med["kd"] / med["ce"]
        out["kd_ce"] = {
            "median": r_kd,
            "min": mins["kd"] / mins["ce"],
            "pairwise": pairwise("kd", "ce"),
            "paired_per_batch": paired["kd_ce"],
            "target": 1.05,
            "met": r_kd <= 1.05,
        }
    if {"online", "kd"} <= ran:
        r_online = med["online"] / med["kd"]
        ideal_batch = 1 + t_teacher * steps / med["kd"]  # with batch creation
        out["online_kd"] = {
            "median": r_online,
            "min": mins["online"] / mins["kd"],
            "pairwise": pairwise("online", "kd"),
            "paired_per_batch": paired["online_kd"],
            "paired_fraction": paired["online_kd"] / ideal,
            "t_teacher_fwd": t_teacher,
            "t_student_step": t_step,
            "ideal": ideal,
            "teacher_in_step": pc["step_online"] - pc["step_kd"],
            "fraction": r_online / ideal,
            "ideal_with_batch": ideal_batch,
            "fraction_with_batch": r_online / ideal_batch,
            "target_fraction": 0.9,
            "met": r_online / ideal >= 0.9,
        }
    if {"multi4", "sep4"} <= ran:
        r_multi = med["multi4"] / med["sep4"]
        out["multi4_sep4"] = {
            "median": r_multi,
            "min": mins["multi4"] / mins["sep4"],
            "pairwise": pairwise("multi4", "sep4"),
            "model_batch_shared": paired["multi4_sep4_model"],
            "target": multi_target,
            "met": r_multi <= multi_target,
        }
    return out


def print_summary(clock: str, s: dict[str, Any], multi_target: float) -> None:
    med, kd, on, mu = s["median"], s.get("kd_ce"), s.get("online_kd"), s.get("multi4_sep4")
    yes = {True: "yes", False: "no"}
    print(f"\n{clock} time, seconds per epoch (median over repeats)")
    print(
        "| measure | epochs (s) | ratio: median / min / pairwise / paired per-batch | target "
        "| met |"
    )
    print("| --- | --- | --- | --- | --- |")
    if kd:
        print(
            f"| t_kd / t_ce | {med['kd']:.3f} / {med['ce']:.3f} | **{kd['median']:.3f}** / "
            f"{kd['min']:.3f} / {kd['pairwise']:.3f} / {kd['paired_per_batch']:.3f} | <= 1.05 | "
            f"{yes[kd['met']]} |"
        )
    if on:
        print(
            f"| t_online / t_kd | {med['online']:.3f} / {med['kd']:.3f} | **{on['median']:.3f}** / "
            f"{on['min']:.3f} / {on['pairwise']:.3f} / {on['paired_per_batch']:.3f} "
            f"(fraction {on['paired_fraction']:.1%}); ideal 1 + {on['t_teacher_fwd'] * 1e3:.3f} / "
            f"{on['t_student_step'] * 1e3:.3f} ms = {on['ideal']:.3f}, fraction "
            f"**{on['fraction']:.1%}** (with batch creation: ideal {on['ideal_with_batch']:.3f}, "
            f"{on['fraction_with_batch']:.1%}); teacher inside the online step "
            f"{on['teacher_in_step'] * 1e3:.3f} ms | >= 90 % | {yes[on['met']]} |"
        )
    if mu:
        print(
            f"| t_multi4 / t_sep4 | {med['multi4']:.3f} / {med['sep4']:.3f} | "
            f"**{mu['median']:.3f}** / {mu['min']:.3f} / {mu['pairwise']:.3f} / model "
            f"(B + 4S) / 4(B + S) = {mu['model_batch_shared']:.3f} | <= {multi_target} "
            f"| {yes[mu['met']]} |"
        )
    pp = s["paired_p10"]
    print(
        f"paired per-batch ratios from 10th percentiles: kd/ce {pp['kd_ce']:.3f}, online/kd "
        f"{pp['online_kd']:.3f} (ideal {pp['ideal_online_kd']:.3f}, fraction "
        f"{pp['online_kd'] / pp['ideal_online_kd']:.1%})"
    )
    print(
        f"in-loop batch creation per batch ({clock}, medians):",
        json.dumps({k: f"{v * 1e3:.3f} ms" for k, v in s["batch_in_loop"].items()}),
    )
    print(
        f"per-batch pieces ({clock}, medians):",
        json.dumps({k: f"{v * 1e3:.3f} ms" for k, v in s["pieces"].items()}),
    )


if __name__ == "__main__":
    main()
