"""The one write-to-temp-then-rename helper."""

from __future__ import annotations

from pathlib import Path

import pytest

from softlabels.stores.atomic import atomic_file, is_temp_name, temp_path, write_atomic


def test_writes_all_and_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "f.bin"
    write_atomic(path, b"one")
    assert path.read_bytes() == b"one"
    with atomic_file(path) as f:
        f.write(b"two, ")
        f.write(b"in parts")
    assert path.read_bytes() == b"two, in parts"
    assert sorted(p.name for p in path.parent.iterdir()) == ["f.bin"]


def test_a_failed_write_keeps_the_old_file_and_no_temp(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    write_atomic(path, b"old")
    with pytest.raises(OSError, match="disk full"), atomic_file(path) as f:
        f.write(b"half")
        raise OSError("disk full")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_temp_names_are_hidden_beside_the_target(tmp_path: Path) -> None:
    tmp = Path(temp_path(tmp_path / "x.json"))
    assert tmp.parent == tmp_path and is_temp_name(tmp.name) and tmp.name.startswith(".x.json.")
    assert temp_path(tmp_path / "x.json") != str(tmp)
    assert is_temp_name("c.partial") and not is_temp_name("x.json") and not is_temp_name(".x")
