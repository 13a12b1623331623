"""How a dump gets its input batches and writes its outputs: file-backed splits loaded ahead
by the loader threads across chunk boundaries, in-memory splits indexed in place, the
outputs cast by torch into the chunk arrays (the bytes numpy's cast gave), and the arrays'
metadata documents written by the store (the cache zarr's own path makes)."""

from __future__ import annotations

import dataclasses
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from softlabels_teachers_helpers import CHUNK, DATASET, cache_files, dump_to, make_config

import softlabels.stores.writer as writer
from softlabels.data import load_dataset
from softlabels.stores._codec import COMPRESSORS
from softlabels.teachers import dump

dump_module = sys.modules["softlabels.teachers.dump"]


class Recorder:
    """A loader over an in-memory array that records which rows each call asked for, and
    on which thread."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.calls: list[tuple[list[int], str]] = []
        self._lock = threading.Lock()

    def __call__(self, idx: np.ndarray) -> torch.Tensor:
        with self._lock:
            self.calls.append((idx.tolist(), threading.current_thread().name))
        return torch.from_numpy(np.ascontiguousarray(self.array[idx]))


def file_backed(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """Make the dump's dataset's train split file-backed (a loader, no array)."""
    import softlabels.data as data

    ds = load_dataset(DATASET)
    recorder = Recorder(ds.train.array)
    split = dataclasses.replace(ds.train, array=None, loader=recorder)
    wrapped = dataclasses.replace(ds, train=split)
    real = data.load_dataset
    monkeypatch.setattr(
        data, "load_dataset", lambda spec: wrapped if spec == DATASET else real(spec)
    )
    return recorder


@pytest.mark.parametrize("views", [0, 2])
def test_a_file_backed_split_gives_the_in_memory_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, views: int
) -> None:
    """Every batch is the rows it stands for (a batch size that does not divide the chunk:
    batches start at each chunk's first row), each loaded once, by the loader threads."""
    memory = tmp_path / "memory.slc"
    dump_to(memory, views=views, batch_size=12)
    recorder = file_backed(monkeypatch)
    files = tmp_path / "files.slc"
    dump_to(files, views=views, batch_size=12)
    assert cache_files(files) == cache_files(memory)
    n = len(load_dataset(DATASET).train)
    expected = [
        list(range(b, min(s + CHUNK, n, b + 12)))
        for s in range(0, n, CHUNK)
        for b in range(s, min(s + CHUNK, n), 12)
    ]
    batches = [rows for rows, _thread in recorder.calls if len(rows) > 2]  # not the probe
    assert sorted(batches) == sorted(expected)
    assert all(t.startswith("softlabels-load") for rows, t in recorder.calls if len(rows) > 2)


def test_an_in_memory_split_is_indexed_without_the_loader_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted: list[Any] = []
    real = ThreadPoolExecutor.submit

    def spy(self: ThreadPoolExecutor, fn: Any, /, *a: Any, **k: Any) -> Any:
        submitted.append(getattr(fn, "__qualname__", repr(fn)))
        return real(self, fn, *a, **k)

    monkeypatch.setattr(ThreadPoolExecutor, "submit", spy)
    dump_to(tmp_path / "c.slc")
    assert not any("load" in name for name in submitted), submitted


def _loads(recorder: Recorder, spans: list[tuple[int, int]], batch: int, pool: Any) -> Any:
    split = dataclasses.replace(load_dataset(DATASET).train, array=None, loader=recorder)
    return dump_module._Loads(pool, split, spans, batch)


def test_batches_are_loaded_ahead_across_chunk_boundaries() -> None:
    """When the last batch of a chunk is handed out, the next chunk's first batches (two
    ahead) are being loaded already: the loader does not wait for the next chunk to start."""
    recorder = Recorder(load_dataset(DATASET).train.array)
    spans = [(0, 32), (64, 96)]  # two chunks, not adjacent (a resume skips chunk 1)
    with ThreadPoolExecutor(1) as pool:
        loads = _loads(recorder, spans, 16, pool)
        first = loads.next(np.arange(0, 16))
        last = loads.next(np.arange(16, 32))
        pool.submit(lambda: None).result()  # every queued load has run
        asked = [rows[0] for rows, _t in recorder.calls]
        assert asked == [0, 16, 64, 80]
        assert torch.equal(first, torch.from_numpy(recorder.array[0:16]))
        assert torch.equal(last, torch.from_numpy(recorder.array[16:32]))
        assert torch.equal(loads.next(np.arange(64, 80)), torch.from_numpy(recorder.array[64:80]))


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_batch_asked_for_out_of_order_is_refused(in_memory: bool) -> None:
    ds = load_dataset(DATASET)
    recorder = Recorder(ds.train.array)
    with ThreadPoolExecutor(1) as pool:
        loads = (
            dump_module._Loads(pool, ds.train, [(0, 32)], 16)
            if in_memory
            else _loads(recorder, [(0, 32)], 16, pool)
        )
        with pytest.raises(RuntimeError, match="asked for"):
            loads.next(np.arange(16, 32))


def test_outputs_are_cast_by_torch_to_numpy_s_bytes() -> None:
    """float32 -> float16 into a strided slot of a chunk array: the bytes of numpy's cast,
    overflow to Inf, subnormals and NaN included."""
    rng = np.random.default_rng(0)
    values = rng.normal(0, 1, (40, 7)).astype(np.float32) * np.float32(3e4)
    values[0, :4] = [7e4, -7e4, 1e-6, -3e-8]  # beyond float16's range, and subnormal
    values[1, 0] = np.nan
    chunk = np.zeros((64, 3, 7), np.float16)
    dump_module._store(chunk[8:48, 1], torch.from_numpy(values))
    with np.errstate(over="ignore", invalid="ignore"):
        want = values.astype(np.float16)
    assert chunk[8:48, 1].tobytes() == want.tobytes()
    assert not chunk[:8].any() and not chunk[48:].any() and not chunk[:, [0, 2]].any()
    wide = np.zeros((40, 2, 7), np.float32)
    dump_module._store(wide[:, 1], torch.from_numpy(values).to(torch.bfloat16))
    want_wide = torch.from_numpy(values).bfloat16().float().numpy()
    assert np.array_equal(wide[:, 1], want_wide, equal_nan=True)


@pytest.mark.parametrize("name", COMPRESSORS)
def test_a_cache_made_through_zarr_s_own_path_is_the_same_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    ours = tmp_path / "ours.slc"
    dump_to(ours, "a=cnn1d", "b=mlp", views=2, topk=3, compressor=name)
    monkeypatch.setattr(writer, "_metadata_documents", lambda: None)
    theirs = tmp_path / "zarr.slc"
    dump_to(theirs, "a=cnn1d", "b=mlp", views=2, topk=3, compressor=name)
    assert cache_files(ours) == cache_files(theirs)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("topk", [None, 3])
def test_a_dump_on_cuda_is_deterministic_and_close_to_cpu(tmp_path: Path, topk: int | None) -> None:
    """The outputs cast on the device and copied into the chunk arrays: the same bytes on
    every run, the CPU's values to float16 tolerance, a cache that verifies."""
    import softlabels

    kw = {"views": 2, "topk": topk}
    cpu = tmp_path / "cpu.slc"
    dump_to(cpu, **kw)
    runs = []
    for i in range(2):
        out = tmp_path / f"cuda{i}.slc"
        dump(make_config("a=cnn1d", **kw), str(out), device="cuda")
        runs.append(out)
    assert cache_files(runs[0]) == cache_files(runs[1])
    on_gpu, on_cpu = (softlabels.open_cache(str(p)) for p in (runs[0], cpu))
    assert on_gpu.verify() == []
    rows = np.arange(on_cpu.num_samples)
    a = on_gpu.teacher("a").dense_logits(rows)
    b = on_cpu.teacher("a").dense_logits(rows)
    np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-2)
