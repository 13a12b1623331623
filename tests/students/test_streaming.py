"""Teacher targets streamed chunk by chunk under a memory budget: the same targets and the
same students as targets held whole (in the same chunk-shuffled order), a bounded number
of decoded chunks, and one-line refusals."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from softlabels.caches import open_cache
from softlabels.cli.app import app
from softlabels.engine.chunk_sampler import ChunkSampler
from softlabels.engine.inputs import Batch, split_batches
from softlabels.errors import UsageError
from softlabels.students import StudentSpec, distill
from softlabels.students.memory import parse_size
from softlabels.students.streaming import StreamedTargets, plan_stream, targets_bytes
from softlabels.students.targets import load_targets
from softlabels.teachers import DumpConfig, TeacherSpec, dump

DATA = "mnist1d-lt:imb=10,n_max=40,n_test=6"  # 159 training rows
ROWS = 16  # rows per chunk: 10 chunks


@pytest.fixture(scope="module")
def caches(tmp_path_factory: pytest.TempPathFactory, teacher_path: Path) -> dict[str, str]:
    root = tmp_path_factory.mktemp("streaming")
    out = {}
    for name, k in (("dense", None), ("k3", 3)):
        cfg = DumpConfig(
            dataset=DATA,
            teachers=(TeacherSpec("bsce", str(teacher_path)), TeacherSpec("rnd", "cnn1d")),
            views=2,
            chunk_size=ROWS,
            topk=k,
        )
        out[name] = str(root / f"{name}.slc")
        dump(cfg, out[name], device="cpu")
    return out


def _batches(sampler: ChunkSampler, epoch: int, size: int, views: int = 2) -> list[Batch]:
    out = []
    for step, rows in enumerate(split_batches(sampler.epoch(epoch), size)):
        view = np.full(len(rows), epoch % views, np.int64)
        out.append(Batch(epoch, step, rows, torch.zeros(len(rows), 1), torch.zeros(1), view=view))
    return out


@pytest.mark.parametrize("kind", ["dense", "k3"])
def test_streamed_targets_equal_targets_held_whole(caches, kind: str) -> None:
    cache = open_cache(caches[kind])
    dev = torch.device("cpu")
    whole = load_targets(cache, "bsce", dev, features=True)
    streamed = StreamedTargets(cache, "bsce", dev, features=True, prefetch=2)
    streamed.bind(ChunkSampler(cache.num_samples, ROWS, 3, seed=1))
    assert streamed.num_views == whole.num_views and streamed.feature_dim == whole.feature_dim
    seen = 0
    for epoch in range(2):
        for batch in _batches(ChunkSampler(cache.num_samples, ROWS, 3, seed=1), epoch, 53):
            for _student in range(2):  # several students of one pass: one read
                assert torch.equal(streamed.batch_logits(batch), whole.batch_logits(batch))
                assert torch.equal(streamed.batch_features(batch), whole.batch_features(batch))
            seen += len(batch.rows)
    streamed.close()
    assert seen == 2 * 159  # batches of 53: every row, so every chunk, in both epochs
    assert streamed.count.now == 0
    # each epoch decodes every chunk once (whether the reader runs ahead or not)
    assert streamed.count.decoded == 2 * 10


def test_decoded_chunks_never_exceed_buffer_plus_prefetch(caches) -> None:
    cache = open_cache(caches["dense"])
    for buffer, prefetch in ((1, 1), (2, 3), (4, 1)):
        streamed = StreamedTargets(cache, "bsce", torch.device("cpu"), prefetch=prefetch)
        sampler = ChunkSampler(cache.num_samples, ROWS, buffer, seed=0)
        streamed.bind(sampler)
        for epoch in range(2):
            for batch in _batches(sampler, epoch, 8):
                streamed.batch_logits(batch)
                time.sleep(0.002)  # a slow consumer: the reader runs as far ahead as allowed
        assert streamed.count.peak <= buffer + prefetch
        assert streamed.count.peak >= buffer  # a whole window was held
        # stopped mid-epoch, with chunks read ahead: nothing stays held
        streamed.batch_logits(_batches(sampler, 2, 8)[0])
        deadline = time.monotonic() + 10
        while streamed.count.now < buffer + prefetch and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # and no further
        assert streamed.count.now == buffer + prefetch
        streamed.close()
        assert streamed.count.now == 0


def test_batches_out_of_the_chunk_order_are_refused(caches) -> None:
    cache = open_cache(caches["dense"])
    streamed = StreamedTargets(cache, "bsce", torch.device("cpu"))
    streamed.bind(ChunkSampler(cache.num_samples, ROWS, 2, seed=0))
    order = ChunkSampler(cache.num_samples, ROWS, 2, seed=0).epoch(0)
    x, y = torch.zeros(1), torch.zeros(1)
    streamed.batch_logits(Batch(0, 0, order[-8:].copy(), x, y))  # the last window first
    with pytest.raises(RuntimeError, match="not in the chunk sampler's order"):
        streamed.batch_logits(Batch(0, 1, order[:8].copy(), x, y))  # then the first
    streamed.close()


def test_budget_plan(caches) -> None:
    cache = open_cache(caches["dense"])
    used = {"bsce": True}
    total, chunk = targets_bytes(cache, used)
    assert total > 9 * chunk
    assert plan_stream(cache, used, None) is None  # no budget: today's behaviour
    assert plan_stream(cache, used, total) is None  # it fits: read whole
    plan = plan_stream(cache, used, 5 * chunk, prefetch=2)
    assert plan is not None and (plan.buffer, plan.prefetch) == (3, 2)
    with pytest.raises(UsageError, match="Expected --target-memory of at least"):
        plan_stream(cache, used, 2 * chunk, prefetch=2)
    with pytest.raises(UsageError, match="Expected --target-memory of at least"):
        plan_stream(cache, used, 5 * chunk, buffer=4, prefetch=2)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2GB", 2 * 10**9),
        ("1.5GiB", 3 * 2**29),
        ("800M", 8 * 10**8),
        ("512 kib", 2**19),
        (123, 123),
    ],
)
def test_sizes(text, value) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["2XB", "", "GB", "-1G", "0", "1.2.3G", "two"])
def test_bad_sizes_are_one_usage_error(text) -> None:
    with pytest.raises(UsageError, match="Expected --target-memory"):
        parse_size(text)


def test_auto_is_a_fraction_of_available_memory() -> None:
    from softlabels.students.memory import available_memory

    assert 0 < parse_size("auto") <= available_memory()


def _w(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _spec(name: str, method: str, **kw) -> StudentSpec:
    return StudentSpec(
        name=name, method=method, model="cnn1d", epochs=2, batch_size=24, data_seed=0, **kw
    )


@pytest.mark.parametrize("kind", ["dense", "k3"])
def test_a_streamed_student_equals_the_in_memory_student_in_the_same_order(
    caches, tmp_path: Path, kind: str
) -> None:
    cache = caches[kind]
    specs = [
        _spec("kd", "kd", teacher="bsce", seed=1),
        _spec("dive", "dive", teacher="rnd", tau=2.0, seed=2),
        _spec("ce", "ce", seed=3),
    ]
    _total, chunk = targets_bytes(open_cache(cache), {"bsce": False, "rnd": False})
    kw = dict(device="cpu", plots=False, evaluate_teachers=False, shuffle_buffer=3)
    memory = distill(cache, DATA, specs, tmp_path / "memory", shuffle="chunks", **kw)
    streamed = distill(
        cache, DATA, specs, tmp_path / "streamed", target_memory=5 * chunk, prefetch=2, **kw
    )
    assert memory.passes == streamed.passes == 2  # kd + dive share one pass, ce its own
    for s in ("kd", "dive", "ce"):
        a, b = _w(tmp_path / "memory" / s / "model.pt"), _w(tmp_path / "streamed" / s / "model.pt")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), s
    distill(cache, DATA, specs[:1], tmp_path / "full", **kw)
    a, b = _w(tmp_path / "full" / "kd" / "model.pt"), _w(tmp_path / "memory" / "kd" / "model.pt")
    assert not all(torch.equal(a[k], b[k]) for k in a)  # the order matters, and was used


def test_streaming_refuses_class_balanced_students_in_one_line(caches, tmp_path: Path) -> None:
    specs = [_spec("cb", "kd", teacher="bsce", sampler="class-balanced")]
    with pytest.raises(
        UsageError, match="Expected sampler instance for student 'cb', got class-balanced"
    ):
        distill(caches["dense"], DATA, specs, tmp_path, device="cpu", target_memory="4kB")
    with pytest.raises(UsageError, match="Expected --shuffle chunks or auto"):
        distill(
            caches["dense"],
            DATA,
            [_spec("kd", "kd", teacher="bsce")],
            tmp_path,
            device="cpu",
            target_memory="4kB",
            shuffle="full",
        )


def test_cli_streams_under_a_tiny_budget_and_refuses_bad_sizes(caches, tmp_path: Path) -> None:
    runner = CliRunner()
    base = ["distill", caches["dense"], "--dataset", DATA, "--method", "kd", "--teacher", "bsce"]
    base += ["--model", "cnn1d", "--epochs", "1", "--batch-size", "24", "--no-plots", "--quiet"]
    res = runner.invoke(app, [*base, "--out", str(tmp_path / "r"), "--target-memory", "4kB"])
    assert res.exit_code == 0, res.output
    saved = torch.load(tmp_path / "r" / "student" / "model.pt", weights_only=True)
    config = json.loads(saved["extra"]["config"])
    assert config["order"]["shuffle"] == "chunks" and config["order"]["buffer"] >= 1
    plan = tmp_path / "plan.toml"
    plan.write_text(
        'target_memory = "4kB"\n[defaults]\nmodel = "cnn1d"\nepochs = 1\nbatch_size = 24\n'
        '[[student]]\nname = "p"\nmethod = "kd"\nteacher = "bsce"\n'
    )
    res = runner.invoke(
        app,
        [
            "distill",
            caches["dense"],
            "--dataset",
            DATA,
            "--plan",
            str(plan),
            "--no-plots",
            "--quiet",
            "--out",
            str(tmp_path / "p"),
        ],
    )
    assert res.exit_code == 0, res.output
    saved = torch.load(tmp_path / "p" / "p" / "model.pt", weights_only=True)
    assert json.loads(saved["extra"]["config"])["order"]["shuffle"] == "chunks"
    bad = runner.invoke(app, [*base, "--out", str(tmp_path / "b"), "--target-memory", "2XB"])
    assert bad.exit_code == 2
    lines = [line for line in bad.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Expected --target-memory a size" in lines[0], bad.output


def test_plan_run_settings(tmp_path: Path) -> None:
    from softlabels.students.plan import load_plan, plan_run_settings

    plan = tmp_path / "plan.toml"
    body = '[[student]]\nname = "kd"\nmethod = "kd"\n'
    plan.write_text('target_memory = "2GB"\nshuffle_buffer = 4\n' + body)
    assert plan_run_settings(plan) == {"target_memory": "2GB", "shuffle_buffer": 4}
    assert [s.name for s in load_plan(plan)] == ["kd"]
    plan.write_text("target_memory = true\n" + body)
    with pytest.raises(UsageError, match="Expected target_memory of type str, got True"):
        plan_run_settings(plan)
    plan.write_text("target_memroy = 1\n" + body)
    with pytest.raises(UsageError, match="Unknown table"):
        load_plan(plan)
