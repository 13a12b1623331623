"""softlabels.CachedDataset: the exact cached views, in any loop, with workers and DDP."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from softlabels_ecosystem_helpers import DATA, run_python
from torch.utils.data import DataLoader, DistributedSampler

import softlabels
from softlabels.data import load_dataset
from softlabels.engine.inputs import BatchStream
from softlabels.engine.samplers import make_sampler
from softlabels.errors import FingerprintMismatchError, UsageError
from softlabels.models import load_model
from softlabels.stores.cache import update_meta
from softlabels.stores.reader import TeacherArrays
from softlabels.students.targets import load_targets

CPU = torch.device("cpu")


def _stream(data: softlabels.CachedDataset, seed: int, **kw: Any) -> BatchStream:
    """The batches `softlabels distill` trains on (instance sampler, batch 32)."""
    cache = data.cache
    return BatchStream(
        data.dataset,
        make_sampler("instance", data.labels, data.num_classes, seed),
        batch_size=32,
        device=CPU,
        seed=seed,
        cached_views=cache.read_view_seeds(),
        schedule=kw.pop("schedule", data.views),
        strength=cache.views.strength,
        **kw,
    )


def _epochs(loader: DataLoader, data: Any, epochs: int = 2) -> list[list[tuple[torch.Tensor, ...]]]:
    out = []
    for e in range(epochs):
        data.set_epoch(e)
        if hasattr(loader.batch_sampler, "set_epoch"):
            loader.batch_sampler.set_epoch(e)
        out.append([tuple(t.clone() for t in b) for b in loader])
    return out


def _equal(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        len(ea) == len(eb)
        and all(
            torch.equal(u, v)
            for ba, bb in zip(ea, eb, strict=True)
            for u, v in zip(ba, bb, strict=True)
        )
        for ea, eb in zip(a, b, strict=True)
    )


@pytest.mark.parametrize(
    ("which", "views", "seed", "schedule", "stream_seed"),
    [
        ("views", "auto", None, "epoch", 4),  # the cache's schedule; any data seed
        ("views", "random", 9, "random", 9),  # the hashed choice of `--data-seed 9`
        ("random", "auto", None, "random", 5),  # a random-schedule cache: the dump's seed
    ],
)
def test_batches_are_those_distill_trains_on(
    request: pytest.FixtureRequest,
    which: str,
    views: str,
    seed: int | None,
    schedule: str,
    stream_seed: int,
) -> None:
    url = request.getfixturevalue(f"{which}_cache")
    data = softlabels.CachedDataset(DATA, url, views=views, seed=seed)
    assert data.views == schedule
    if schedule == "random":
        assert data.seed == stream_seed
    stream = _stream(data, stream_seed)
    targets = load_targets(data.cache, "t", CPU)
    batches = softlabels.CachedBatchSampler(data, 32, seed=stream_seed)
    loader = DataLoader(data, batch_sampler=batches)  # the default collate
    seen = set()
    for epoch in range(3):
        data.set_epoch(epoch)
        batches.set_epoch(epoch)
        got = list(loader)
        want = list(stream.epoch(epoch))
        assert len(got) == len(want) == len(batches) == 159 // 32
        for (x, y, t, rows), b in zip(got, want, strict=True):
            assert rows.tolist() == b.rows.tolist()
            assert torch.equal(x, b.x) and torch.equal(y, b.y)
            assert torch.equal(t, targets.batch_logits(b))
            assert y.dtype == rows.dtype == torch.int64 and x.dtype == t.dtype == torch.float32
            seen |= {(int(r), int(v)) for r, v in zip(b.rows, b.view, strict=True)}
    assert {v for _, v in seen} == set(range(data.num_views))  # every view was replayed


def test_each_input_is_the_one_the_teacher_labelled(views_cache: str, teacher_path: Path) -> None:
    data = softlabels.CachedDataset(DATA, views_cache, teacher="t")
    teacher = load_model(str(teacher_path))
    cached = data.cache.teacher("t").logits  # the raw zarr array [N, V, C]
    rows = np.arange(0, 159, 7)
    for epoch in (0, 1, 2):
        data.set_epoch(epoch)
        x = torch.stack([data[int(r)][0] for r in rows])  # one by one (no batch of its own)
        with torch.inference_mode():
            rerun, _ = teacher.forward(x)
        view = epoch % 2
        stored = torch.from_numpy(cached[rows, view].astype(np.float32))
        torch.testing.assert_close(rerun, stored, atol=2e-3, rtol=2e-3)
        other = torch.from_numpy(cached[rows, 1 - view].astype(np.float32))
        assert (rerun - other).abs().max() > 0.05  # the other view is another input
        assert torch.equal(torch.stack([data[int(r)][2] for r in rows]), stored)


def test_a_clean_cache_gives_clean_inputs_and_refuses_replay(
    clean_cache: str, views_cache: str
) -> None:
    ds = load_dataset(DATA)
    data = softlabels.CachedDataset(ds, clean_cache)  # a dataset object works as well
    assert data.views == "clean" and data.teacher == "t" and len(data) == 159
    x, y, t, i = data[5]
    assert torch.equal(x, ds.clean(ds.train.load(np.array([5])))[0]) and (y, i) == (
        ds.train.labels[5],
        5,
    )
    logits = data.cache.teacher("t").logits[5, 0].astype(np.float32)
    assert torch.equal(t, torch.from_numpy(logits))
    with pytest.raises(UsageError, match=r'Expected views="clean" for .*clean outputs only'):
        softlabels.CachedDataset(DATA, clean_cache, views="epoch")
    # views="clean" on an augmented cache: the clean input, view 0's target, every epoch.
    mixed = softlabels.CachedDataset(DATA, views_cache, views="clean")
    mixed.set_epoch(1)
    x, _, t, _ = mixed[5]
    assert torch.equal(x, ds.clean(ds.train.load(np.array([5])))[0])
    assert torch.equal(
        t, torch.from_numpy(mixed.cache.teacher("t").logits[5, 0].astype(np.float32))
    )


def test_temperature_gives_probabilities(views_cache: str) -> None:
    logits = softlabels.CachedDataset(DATA, views_cache)
    probs = softlabels.CachedDataset(DATA, views_cache, temperature=4.0)
    for e in (0, 1):
        logits.set_epoch(e)
        probs.set_epoch(e)
        torch.testing.assert_close(probs[3][2], torch.softmax(logits[3][2] / 4.0, dim=-1))
    assert torch.isclose(probs[3][2].sum(), torch.tensor(1.0))
    for bad in (0, -1.0):
        with pytest.raises(UsageError, match="Expected temperature > 0"):
            softlabels.CachedDataset(DATA, views_cache, temperature=bad)


def test_workers_see_set_epoch_and_the_dataset_pickles(views_cache: str) -> None:
    data = softlabels.CachedDataset(DATA, views_cache)
    ref = _epochs(DataLoader(data, batch_size=40), data)
    assert not torch.equal(ref[0][0][0], ref[1][0][0])  # epoch 1 replays another view
    for kw in ({"num_workers": 2}, {"num_workers": 2, "persistent_workers": True}):
        assert _equal(_epochs(DataLoader(data, batch_size=40, **kw), data), ref), kw
    # What a spawned worker gets: no open cache, the dataset as its spec; both rebuilt.
    copy = pickle.loads(pickle.dumps(data))
    assert copy._cache is None and copy._dataset is None
    assert _equal(_epochs(DataLoader(copy, batch_size=40), copy), ref)


def test_distributed_sampler_and_ranks(views_cache: str) -> None:
    data = softlabels.CachedDataset(DATA, views_cache)
    data.set_epoch(1)
    seen: list[int] = []
    for rank in (0, 1):
        sampler = DistributedSampler(data, num_replicas=2, rank=rank, seed=3)
        sampler.set_epoch(1)
        for x, y, t, rows in DataLoader(data, batch_size=16, sampler=sampler):
            for k, r in enumerate(rows.tolist()):
                x1, y1, t1, _ = data[r]
                assert torch.equal(x[k], x1) and int(y[k]) == y1 and torch.equal(t[k], t1)
            seen += rows.tolist()
    assert sorted(set(seen)) == list(range(159)) and len(seen) == 160  # padded by one
    # Each rank's slice of every global batch, as `torchrun ... softlabels distill` has it.
    for rank in (0, 1):
        mine = softlabels.CachedBatchSampler(data, 32, seed=4, rank=rank, world=2)
        stream = _stream(data, 4, rank=rank, world=2)
        for e in (0, 1):
            mine.set_epoch(e)
            assert [list(b) for b in mine] == [b.rows.tolist() for b in stream.epoch(e)]
    with pytest.raises(UsageError, match="Expected 0 <= rank < world"):
        softlabels.CachedBatchSampler(data, 32, rank=2, world=2)


def test_bad_input_is_one_line(views_cache: str, tmp_path: Path) -> None:
    with pytest.raises(FingerprintMismatchError, match="built for another dataset"):
        softlabels.CachedDataset("mnist1d-lt:imb=10,n_max=30,n_test=6", views_cache)
    with pytest.raises(UsageError, match="Expected a teacher of this cache \\(t\\), got 'x'"):
        softlabels.CachedDataset(DATA, views_cache, teacher="x")
    with pytest.raises(UsageError, match="Expected views auto, epoch, random, clean"):
        softlabels.CachedDataset(DATA, views_cache, views="online")
    with pytest.raises(UsageError, match="Expected replay_views in \\[1, 2\\], got 3"):
        softlabels.CachedDataset(DATA, views_cache, replay_views=3)
    # Views made under another augmentation recipe are not this dataset's views.
    copy = tmp_path / "c.slc"
    shutil.copytree(views_cache, copy)
    views = dict(softlabels.open_cache(str(copy)).meta["views"])
    update_meta(str(copy), "views", views | {"recipe": {**views["recipe"], "shift": 99}})
    with pytest.raises(UsageError, match="augmentation recipe"):
        softlabels.CachedDataset(DATA, str(copy))
    softlabels.CachedDataset(DATA, str(copy), views="clean")  # clean inputs need no recipe
    data = softlabels.CachedDataset(DATA, views_cache, replay_views=1)
    data.set_epoch(1)
    assert data.views_of([0, 1]).tolist() == [0, 0]  # the first view only
    with pytest.raises(IndexError, match="Expected rows in \\[0, 159\\), got 159"):
        data[159]


def test_a_sparse_teacher_is_read_through_its_dense_logits(
    views_cache: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The top-k path: a teacher whose arrays say ``storage == "topk"`` is read through
    ``dense_logits(rows)`` [B, V, C] (here a stand-in that scales the dense logits)."""
    dense = softlabels.CachedDataset(DATA, views_cache)
    calls = []

    def dense_logits(self: TeacherArrays, rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        return 2 * self.logits[np.asarray(rows)].astype(np.float32)

    monkeypatch.setattr(TeacherArrays, "storage", "topk", raising=False)
    monkeypatch.setattr(TeacherArrays, "dense_logits", dense_logits, raising=False)
    sparse = softlabels.CachedDataset(DATA, views_cache)
    for e in (0, 1):
        dense.set_epoch(e)
        sparse.set_epoch(e)
        assert torch.equal(sparse[7][2], 2 * dense[7][2])
    assert calls == [1, 1]


def test_import_softlabels_stays_free_of_torch() -> None:
    code = (
        "import sys, softlabels; assert 'torch' not in sys.modules; "
        "assert {'CachedDataset', 'CachedBatchSampler'} <= set(softlabels.__all__)"
    )
    done = run_python("-c", code)
    assert done.returncode == 0, done.stderr
    assert softlabels.CachedBatchSampler.__module__ == softlabels.CachedDataset.__module__
