"""``torchrun ... softlabels dump``: two gloo ranks write the cache one process writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from softlabels_distributed_helpers import (
    LOCK,
    cache_files,
    dump_args,
    dump_in_process,
    torchrun,
)

from softlabels import open_cache

pytestmark = pytest.mark.slow  # each test starts torchrun and two workers (~10 s on 2 cores)


def test_two_ranks_write_the_bytes_of_one_process(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "two.slc"
    proc = torchrun(*dump_args(out), "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Rank 0 alone prints the result: one JSON document on stdout.
    result = json.loads(proc.stdout)
    assert result["status"] == "created"
    assert result["chunks_written"] == result["chunks_total"] == 10
    assert result["extra"]["world_size"] == 2
    assert result["extra"]["chunks_per_rank"] == [5, 5]
    assert not (out / LOCK).exists()
    # Every file, metadata and manifest included, is the same as one process wrote.
    assert cache_files(out) == cache_files(reference)
    assert open_cache(str(out)).verify() == []


def test_crashed_rank_is_redone_by_a_resume(reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "crash.slc"
    # Rank 1's teacher kills its process at its 5th forward call (after a chunk or two);
    # torchrun then stops rank 0, which finishes its commit in flight and releases the lock.
    # Run through the `softlabels` console script, as users would under torchrun.
    proc = torchrun(
        *dump_args(out),
        entry="script",
        env={"SOFTLABELS_TEST_CRASH_RANK": "1", "SOFTLABELS_TEST_CRASH_AFTER": "5"},
    )
    assert proc.returncode != 0, proc.stderr[-3000:]
    # Rank 0 ends with one error line: the lost peer, or torchrun's SIGTERM as an interrupt.
    assert "error: rank 0: another process of this job failed" in proc.stderr or (
        "error: interrupted" in proc.stderr
    ), proc.stderr[-3000:]
    cache = open_cache(str(out))
    missing = cache.missing_chunks()
    assert missing, "the crash left every chunk committed; crash earlier"
    assert not (out / LOCK).exists(), "rank 0 kept the lock after torchrun stopped it"

    # One process resumes: only the missing chunks are computed, and the cache ends as the
    # uninterrupted one-process cache, byte for byte.
    result = dump_in_process(out)
    assert result.status == "resumed"
    assert result.chunks_written == len(missing["teachers/a/logits"])
    assert cache_files(out) == cache_files(reference)


def test_two_ranks_write_the_mixed_views_of_one_process(tmp_path: Path) -> None:
    """Mixed views: each (row, view) is mixed from its own seed, not the rank's share."""
    from softlabels_distributed_helpers import CHUNK, DATASET, TEACHERS, one_thread

    from softlabels.teachers import DumpConfig, dump, parse_teacher

    mix = ["--mixup", "0.4", "--cutmix", "1.0", "--mix-prob", "0.7"]
    out = tmp_path / "two.slc"
    proc = torchrun(*dump_args(out), *mix, "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["extra"]["chunks_per_rank"] == [5, 5]
    one = tmp_path / "one.slc"
    cfg = DumpConfig(
        dataset=DATASET, teachers=tuple(parse_teacher(t) for t in TEACHERS), views=2,
        chunk_size=CHUNK, batch_size=5, mixup=0.4, cutmix=1.0, mix_prob=0.7,
    )  # fmt: skip
    with one_thread():
        dump(cfg, str(one), device="cpu")
    a, b = open_cache(str(out)), open_cache(str(one))
    assert a.metadata.format == 2 and a.verify() == []
    for x, y in zip(a.read_mix() or (), b.read_mix() or (), strict=True):
        assert (x == y).all()
    assert (a.read_mix()[0] >= 0).any()  # type: ignore[index]


def test_two_ranks_write_the_sparse_cache_of_one_process(tmp_path: Path) -> None:
    """Rank 0 fits the rest profile on its chunks and commits them before the others start;
    the other rank reads the stored profile: the same files as one process."""
    from softlabels_distributed_helpers import BATCH, CHUNK, DATASET, TEACHERS, one_thread

    from softlabels.teachers import DumpConfig, dump, parse_teacher

    out = tmp_path / "two.slc"
    proc = torchrun(*dump_args(out), "--topk", "3", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["status"] == "created" and result["chunks_written"] == 10
    one = tmp_path / "one.slc"
    cfg = DumpConfig(
        dataset=DATASET, teachers=tuple(parse_teacher(t) for t in TEACHERS), views=2,
        chunk_size=CHUNK, batch_size=BATCH, topk=3,
    )  # fmt: skip
    with one_thread():
        dump(cfg, str(one), device="cpu")
    assert cache_files(out) == cache_files(one)
    assert open_cache(str(out)).verify() == []
