"""The README's cache-format tables and the schema module say the same thing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from softlabels.stores import schema

README = Path(__file__).resolve().parents[2] / "README.md"
HEADING = re.compile(r"^## Cache format \(version (\d+)\)$", re.M)


def _section() -> str:
    text = README.read_text()
    match = HEADING.search(text)
    assert match, "README has no '## Cache format (version N)' section"
    rest = text[match.end() :]
    end = rest.find("\n## ")
    return rest if end < 0 else rest[:end]


def _tables(section: str) -> dict[str, list[tuple[str, str]]]:
    """Markdown tables of the section by their first header cell: (first cell, rest) rows."""
    tables: dict[str, list[tuple[str, str]]] = {}
    header = None
    for line in section.splitlines():
        if not line.startswith("|"):
            header = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells[0]
            tables[header] = []
        elif not set(cells[0]) <= {"-", " "}:
            tables[header].append((cells[0], " | ".join(cells[1:])))
    return tables


def _ticks(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def _expand(path: str) -> list[str]:
    """``a/{b,c}`` -> ``a/b``, ``a/c``."""
    match = re.search(r"\{([^}]+)\}", path)
    if not match:
        return [path]
    return [path[: match.start()] + part + path[match.end() :] for part in match[1].split(",")]


@pytest.fixture(scope="module")
def tables() -> dict[str, list[tuple[str, str]]]:
    found = _tables(_section())
    assert set(found) == {"path", "key"}, found.keys()
    return found


def test_the_heading_names_the_format_version() -> None:
    match = HEADING.search(README.read_text())
    assert match and int(match[1]) == schema.FORMAT_VERSION


def test_the_root_document_row(tables) -> None:
    rows = [(first, rest) for first, rest in tables["path"] if _ticks(first)[0] == schema.ROOT_DOC]
    assert len(rows) == 1
    first, rest = rows[0]
    assert _ticks(first) == [schema.ROOT_DOC, schema.ROOT_ATTR]
    assert f"`format` is the format version, `{schema.FORMAT_VERSION}`" in rest


def test_array_paths_match(tables) -> None:
    documented = [
        path
        for first, _ in tables["path"]
        for path in _expand(_ticks(first)[0])
        if path != schema.ROOT_DOC
        and path not in schema.TABLES
        and not path.startswith(f"{schema.MANIFEST}/")
    ]
    assert len(documented) == len(set(documented))
    assert set(documented) == set(schema.ARRAY_PATHS)


def test_table_columns_match(tables) -> None:
    rows = {_ticks(first)[0]: rest for first, rest in tables["path"]}
    for table in schema.TABLES:
        columns = re.findall(r"`(\w+)` \((\w+)", rows[table])
        assert tuple(columns) == schema.TABLE_COLUMNS[table], table
        assert schema.table_schema(table).names == [name for name, _ in columns]


def test_manifest_record_names_match(tables) -> None:
    documented = [
        _ticks(first)[0]
        for first, _ in tables["path"]
        if _ticks(first)[0].startswith(f"{schema.MANIFEST}/")
    ]
    assert tuple(documented) == schema.RECORD_NAMES


def test_root_keys_match(tables) -> None:
    keys = [key for first, _ in tables["key"] for key in _ticks(first)]
    root = [k for k in keys if "." not in k]
    assert tuple(root) == schema.CacheMeta.keys_of()  # every key, in the order written


def test_record_keys_match(tables) -> None:
    rows = {_ticks(first)[0]: rest for first, rest in tables["key"] if len(_ticks(first)) == 1}
    records = {k: v for k, v in schema.attribute_keys().items() if k}
    for where, keys in records.items():
        assert where in rows, f"README documents no keys of {where}"
        assert tuple(_ticks(rows[where])) == keys, where
    nested = [k for k in rows if "." in k]
    assert set(nested) <= set(records), nested
