"""Scale-out pieces that need no second process: attach, batch slices, the helpers alone."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from softlabels_distributed_helpers import DATASET

from softlabels import distributed
from softlabels.data import load_dataset
from softlabels.engine.inputs import BatchStream
from softlabels.engine.samplers import make_sampler
from softlabels.errors import CacheExistsError, CacheNotFoundError, UsageError
from softlabels.stores.cache import ArraySpec, Cache, CacheWriter
from softlabels.stores.lock import LOCK_KEY, read_lock

N, CHUNK = 10, 4
SPECS = [
    ArraySpec("labels", (N,), "int32"),
    ArraySpec("views/seed", (N, 1), "uint64"),
    ArraySpec("teachers/t/logits", (N, 1, 3), "float32"),
]
TORCHRUN_ENV = {
    "WORLD_SIZE": "2",
    "RANK": "0",
    "LOCAL_RANK": "0",
    "MASTER_ADDR": "127.0.0.1",
    "MASTER_PORT": "29999",
}


def _meta(key: str) -> dict:
    return {
        "format": 1,
        "N": N,
        "C": 3,
        "V": 1,
        "chunk_size": CHUNK,
        "config_key": key,
        "config": {"x": key},
        "teachers": {"t": {"features": False}},
        "class_names": ["a", "b", "c"],
        "dataset": {"fingerprint": "f" * 64, "spec": "toy", "split": "train"},
    }


def _rows(c: int) -> dict[str, np.ndarray]:
    s, e = c * CHUNK, min(N, (c + 1) * CHUNK)
    return {
        "labels": (np.arange(s, e) % 3).astype(np.int32),
        "views/seed": np.zeros((e - s, 1), np.uint64),
        "teachers/t/logits": np.full((e - s, 1, 3), c, np.float32),
    }


def test_attached_writers_commit_beside_the_lock_holder(tmp_path) -> None:
    url = str(tmp_path / "c.slc")
    tables = {"samples.parquet": pa.table({"row": list(range(N))}), "classes.parquet": pa.table({})}
    with CacheWriter.open(url, meta=_meta("k"), specs=SPECS, tables=tables) as main:
        main.write_static({})
        other = CacheWriter.attach(url, meta=_meta("k"), specs=SPECS)
        assert other.lock is None
        for c in main.pending_chunks():  # as two ranks would split them
            (main if c % 2 == 0 else other).write_chunk(c, _rows(c))
        other.close()  # takes no lock, so releases none
        assert read_lock(main.loc) is not None
    cache = Cache(url)
    assert not (tmp_path / "c.slc" / LOCK_KEY).exists()
    assert cache.verify() == []
    assert cache.teacher("t").reader().read_all()[:, 0, 0].tolist() == [0] * 4 + [1] * 4 + [2] * 2


def test_attach_refuses_other_settings_and_missing_caches(tmp_path) -> None:
    url = str(tmp_path / "c.slc")
    with pytest.raises(CacheNotFoundError, match="not a softlabels cache"):
        CacheWriter.attach(url, meta=_meta("k"), specs=SPECS)
    tables = {"samples.parquet": pa.table({"row": list(range(N))}), "classes.parquet": pa.table({})}
    CacheWriter.open(url, meta=_meta("k"), specs=SPECS, tables=tables).close()
    with pytest.raises(CacheExistsError, match="every process must see the same"):
        CacheWriter.attach(url, meta=_meta("other"), specs=SPECS)


def test_one_process_is_rank_zero_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)
    ctx = distributed.setup("cpu")
    assert (ctx.rank, ctx.world, ctx.distributed, ctx.is_main, ctx.backend) == (
        0,
        1,
        False,
        True,
        None,
    )
    assert not distributed.launched() and distributed.is_main()
    distributed.barrier()
    assert distributed.broadcast_json({"a": [1]}) == {"a": [1]}
    assert distributed.all_gather_json(3) == [3]
    # WORLD_SIZE=1 (torchrun --nproc_per_node=1) is one process too.
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert not distributed.launched()


@pytest.mark.parametrize("what", ["dump", "distill"])
def test_memory_urls_are_refused_under_torchrun(
    what: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    for key, value in TORCHRUN_ENV.items():
        monkeypatch.setenv(key, value)
    assert distributed.launched() and distributed.world_size() == 2
    with pytest.raises(UsageError, match="memory of one process"):
        if what == "dump":
            from softlabels.teachers import DumpConfig, dump, parse_teacher

            dump(DumpConfig(DATASET, (parse_teacher("a=cnn1d"),)), "memory://x/c.slc")
        else:
            from softlabels.students import StudentSpec, distill

            distill("memory://x/c.slc", DATASET, [StudentSpec("s")], tmp_path / "run")


def test_rank_slices_make_up_the_global_batches() -> None:
    ds = load_dataset(DATASET)
    n = len(ds.train)

    def stream(rank: int, world: int) -> BatchStream:
        sampler = make_sampler("class-balanced", ds.train.labels, ds.num_classes, 7)
        return BatchStream(
            ds,
            sampler,
            batch_size=32,
            device=torch.device("cpu"),
            rank=rank,
            world=world,
            seed=7,
        )

    whole = list(stream(0, 1).epoch(1))
    parts = [list(stream(r, 2).epoch(1)) for r in (0, 1)]
    assert len(whole) == len(parts[0]) == len(parts[1]) == n // 32
    for b, p0, p1 in zip(whole, *parts, strict=True):
        assert b.share == 1.0 and p0.global_size == p1.global_size == len(b.rows)
        assert p0.share + p1.share == pytest.approx(1.0)
        assert np.array_equal(np.sort(np.concatenate([p0.rows, p1.rows])), np.sort(b.rows))
        # Each sample gets the same augmentation as in one process.
        order = {int(r): i for i, r in enumerate(b.rows)}
        for p in (p0, p1):
            idx = [order[int(r)] for r in p.rows]
            assert np.array_equal(p.x.numpy(), b.x[idx].numpy())
            assert np.array_equal(p.seeds, b.seeds[idx])
    with pytest.raises(UsageError, match="at least one sample per process"):
        BatchStream(
            ds,
            make_sampler("instance", ds.train.labels, ds.num_classes, 0),
            batch_size=1,
            device=torch.device("cpu"),
            rank=0,
            world=2,
        )
