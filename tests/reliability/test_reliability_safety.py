"""Issue 7, item 8: caches hold no pickles (every file is a codec-encoded chunk, JSON or
Parquet); checkpoints load with ``torch.load(weights_only=True)`` and a checkpoint carrying
code runs none of it; sample ids (``..``, absolute paths) never become paths."""

from __future__ import annotations

import ast
import json
import os
import pickletools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from softlabels_reliability_faults import DATASET, REPO, cache_files, invoke, one_error_line
from typer.testing import CliRunner

import softlabels
from softlabels.cli.app import app
from softlabels.data import Dataset, Split, register_dataset

ZSTD = b"\x28\xb5\x2f\xfd"


def _parses_as_pickle(data: bytes) -> bool:
    """Whether the bytes are a complete pickle (opcodes only: nothing is executed)."""
    try:
        ops = list(pickletools.genops(data))
    except Exception:
        return False
    return bool(ops) and ops[-1][0].name == "STOP"


def _check_no_pickles(root: Path, *, compressed: bool = True) -> dict[str, int]:
    seen = {"chunk": 0, "json": 0, "parquet": 0}
    for key, data in cache_files(root, hidden=True).items():
        assert not _parses_as_pickle(data), key
        for marker in (
            b"cnumpy",
            b"ctorch",
            b"c__builtin__",
            b"cbuiltins",
            b"\x8c\x05numpy",
            b"\x8c\x05torch",
            b"cposix",
            b"\x80\x04\x95",
            b"\x80\x05\x95",
        ):
            assert marker not in data, (key, marker)
        if "/c/" in f"/{key}":
            assert not compressed or data.startswith(ZSTD), key
            seen["chunk"] += 1
        elif key.endswith(".json"):
            json.loads(data)
            seen["json"] += 1
        elif key.endswith(".parquet"):
            assert data[:4] == data[-4:] == b"PAR1", key
            seen["parquet"] += 1
        else:
            raise AssertionError(f"unexpected file in a cache: {key}")
    return seen


@pytest.mark.parametrize("kind", ["single", "multi", "views"])
def test_caches_hold_no_pickles(kind: str, reference) -> None:
    seen = _check_no_pickles(reference(kind))
    assert seen["chunk"] >= 20 and seen["parquet"] == 2 and seen["json"] >= 10


def test_no_pickles_after_tune_tau_add_teacher_and_raw_chunks(reference, copy_of, tmp_path) -> None:
    from softlabels.stores.cache import add_teacher

    root = copy_of(reference("views"))
    assert (
        invoke("tune-tau", root, "--teacher", "a", "--taus", "1,2", "--device", "cpu").exit_code
        == 0
    )
    z = np.asarray(softlabels.open_cache(str(root)).teacher("a").logits[...])
    add_teacher(str(root), "copy", {"model": "copy", "dtype": "float16"}, {"logits": z})
    _check_no_pickles(root)
    raw = tmp_path / "raw.slc"
    result = invoke(
        "dump",
        "--dataset",
        DATASET,
        "--teacher",
        "a=cnn1d",
        "--out",
        raw,
        "--chunk-size",
        32,
        "--device",
        "cpu",
        "--compressor",
        "none",
        "--no-features",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    _check_no_pickles(raw, compressed=False)
    # Uncompressed chunks are exactly the array's bytes (32 rows, padded), nothing else.
    assert len((raw / "teachers/a/logits/c/0/0/0").read_bytes()) == 32 * 1 * 10 * 2
    assert len((raw / "labels/c/0").read_bytes()) == 32 * 4


def _tensors_and_plain(value: object) -> Iterator[object]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _tensors_and_plain(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _tensors_and_plain(v)
    else:
        yield value


def test_checkpoints_load_with_weights_only(plan_run: dict) -> None:
    out = plan_run["out"]
    files = [out / "steady" / "model.pt", out / "steady" / "state.pt", out / "wild" / "state.pt"]
    for path in files:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        for leaf in _tensors_and_plain(ckpt):
            assert leaf is None or isinstance(leaf, torch.Tensor | str | int | float | bool), (
                path,
                type(leaf),
            )


def _calls(tree: ast.AST, module: str, name: str) -> Iterator[ast.Call]:
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == name
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == module
        ):
            yield node


def test_library_loads_nothing_unsafely() -> None:
    """Every torch.load passes weights_only=True; pickle only behind CIFAR's safe unpickler."""
    loads = 0
    for folder in ("softlabels", "stores", "cli"):
        for path in sorted((REPO / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for call in _calls(tree, "torch", "load"):
                kw = {k.arg: k.value for k in call.keywords}
                assert isinstance(kw.get("weights_only"), ast.Constant), (path, call.lineno)
                assert kw["weights_only"].value is True, (path, call.lineno)
                loads += 1
            text = path.read_text()
            for name in ("load", "loads"):
                assert not list(_calls(tree, "pickle", name)), path
            assert "allow_pickle=True" not in text, path
            if "pickle.Unpickler" in text:
                assert path.name == "cifar.py" and "def find_class" in text, path
    assert loads >= 3


class _Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_checkpoints_carrying_code_run_none(reference, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    evil = tmp_path / "teacher.pt"
    torch.save({"arch": {"name": "cnn1d"}, "state_dict": _Payload(marker)}, evil)
    line = one_error_line(
        invoke(
            "dump",
            "--dataset",
            DATASET,
            "--teacher",
            f"a={evil}",
            "--out",
            tmp_path / "c.slc",
            "--device",
            "cpu",
        )
    )
    assert "weights_only=True" in line and str(evil) in line, line
    # A distill run folder whose state.pt carries code: resuming refuses it.
    run = tmp_path / "run"
    (run / "student").mkdir(parents=True)
    torch.save({"epochs_done": 1, "model": _Payload(marker)}, run / "student" / "state.pt")
    result = CliRunner().invoke(
        app,
        [
            "distill",
            str(reference("single")),
            "--dataset",
            DATASET,
            "--method",
            "ce",
            "--epochs",
            "1",
            "--out",
            str(run),
            "--device",
            "cpu",
        ],
    )
    assert result.exit_code != 0
    assert not (run / "student" / "model.pt").exists()
    assert not marker.exists(), "unpickling ran code"


def test_damaged_state_file_is_one_line(reference, tmp_path: Path) -> None:
    """A damaged state.pt is refused in one line naming it, not with a traceback."""
    run = tmp_path / "run"
    (run / "student").mkdir(parents=True)
    (run / "student" / "state.pt").write_bytes(b"PK\x03\x04 not really a zip")
    result = CliRunner().invoke(
        app,
        [
            "distill",
            str(reference("single")),
            "--dataset",
            DATASET,
            "--method",
            "ce",
            "--epochs",
            "1",
            "--out",
            str(run),
            "--device",
            "cpu",
        ],
    )
    assert "state.pt" in one_error_line(result)


UNSAFE_IDS = [
    "../evil",
    "/abs/issue7-evil",
    "a/../../evil2",
    "..",
    ".",
    "",
    "..\\..\\evil3",
    "x/\x00/y",
    "~/evil4",
    "ok/sample",
]


@pytest.fixture
def unsafe_ids_dataset() -> Iterator[str]:
    from softlabels.data import _registry

    name = "issue7-unsafe-ids"

    @register_dataset(name, defaults={})
    def build(spec: str) -> Dataset:
        n = len(UNSAFE_IDS)
        x = np.linspace(-1, 1, n * 40, dtype=np.float32).reshape(n, 1, 40)
        labels = np.arange(n) % 2
        return Dataset(
            spec=spec,
            name=name,
            class_names=["a", "b"],
            train=Split("train", list(UNSAFE_IDS), labels, array=x),
            test=Split("test", list(UNSAFE_IDS), labels, array=x),
            family="generic",
            recipe={"kind": "none"},
        )

    yield name
    with _registry._lock:
        _registry._builders.pop(name, None)
        _registry._defaults.pop(name, None)
        for spec in [s for s in _registry._cache if s.startswith(name)]:
            _registry._cache.pop(spec)


def _listing(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def test_sample_ids_never_become_paths(unsafe_ids_dataset: str, tmp_path: Path) -> None:
    parent = tmp_path / "work"
    inner = parent / "inner"
    inner.mkdir(parents=True)
    before = _listing(tmp_path)
    out = inner / "c.slc"
    result = invoke(
        "dump",
        "--dataset",
        unsafe_ids_dataset,
        "--teacher",
        "a=cnn1d",
        "--out",
        out,
        "--chunk-size",
        4,
        "--batch-size",
        2,
        "--device",
        "cpu",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    added = _listing(tmp_path) - before
    assert added and all(p.startswith("work/inner/c.slc") for p in added), sorted(added)
    assert not Path("/abs/issue7-evil").exists()
    files = cache_files(out, hidden=True)
    for key in files:
        assert "evil" not in key and "\\" not in key, key
    ids = pq.read_table(out / "samples.parquet").column("sample_id").to_pylist()
    assert ids == UNSAFE_IDS  # the ids live in the table, and only there
    assert invoke("verify", out, "--json").exit_code == 0
