"""Issue 7, item 3: ``verify`` names every damaged file (a byte flipped in any chunk file,
files truncated or deleted, a damaged Parquet table, manifest record or metadata document),
and no command reads a damaged cache silently: ``distill`` and ``tune-tau`` refuse with one
line naming the damaged chunk."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from softlabels_reliability_faults import (
    DAMAGES,
    DATASET,
    Target,
    compare_with_reference,
    damage,
    damage_targets,
    detected,
    dump_args,
    invoke,
    one_error_line,
    verify_json,
)

from softlabels.stores.cache import Cache


def _problems(root: Path) -> list[dict]:
    return [p.to_dict() for p in Cache(str(root)).verify()]


def _related(problem: dict, target: Target) -> bool:
    """A problem the damage of ``target`` explains (no false alarm elsewhere)."""
    if detected([problem], target):
        return True
    # A damaged or missing chunk record leaves that chunk of every array uncommitted.
    return target.kind == "record" and problem["chunk"] == target.chunk


@pytest.mark.parametrize("how", DAMAGES)
def test_verify_names_every_damaged_file(how: str, reference, copy_of) -> None:
    """Each file the manifest covers, and each manifest record, damaged one at a time."""
    root = copy_of(reference("multi"))  # two teachers: 6 row arrays, 4 static arrays
    rng = random.Random(f"issue7-verify-{how}")
    targets = damage_targets(root)
    kinds = {t.kind for t in targets}
    assert kinds == {"chunk", "table", "metadata", "static", "record"}, kinds
    assert sum(t.kind == "chunk" for t in targets) == 6 * 5
    checked = 0
    for target in targets:
        if target.kind == "record" and how == "flip":
            continue  # a flip may keep a record valid JSON: see the targeted record tests
        path = root / target.key
        original = path.read_bytes()
        what = damage(root, target, how, rng)
        problems = _problems(root)
        assert detected(problems, target), (what, problems)
        assert all(_related(p, target) for p in problems), (what, problems)
        path.write_bytes(original)
        checked += 1
    assert _problems(root) == []
    assert checked >= 40


def test_many_damages_at_once_through_the_cli(reference, copy_of) -> None:
    root = copy_of(reference("views"))
    rng = random.Random("issue7-many")
    targets = [t for t in damage_targets(root) if t.kind != "record"]
    chosen = rng.sample(targets, 8)
    done = [damage(root, t, rng.choice(DAMAGES), rng) for t in chosen]
    code, problems = verify_json(root)
    assert code == 1
    for target, what in zip(chosen, done, strict=True):
        assert detected(problems, target), (what, problems)
    assert len(problems) == len(chosen), problems  # one problem per damaged file, no more
    text = invoke("verify", root)  # the table (long names wrap there)
    assert text.exit_code == 1 and f"{len(chosen)} problem(s)" in " ".join(text.stdout.split())


def _record(root: Path, chunk: int) -> Path:
    return root / "manifest" / f"chunk-{chunk:06d}.json"


def _edit_record(root: Path, chunk: int, edit) -> None:
    path = _record(root, chunk)
    doc = json.loads(path.read_bytes())
    edit(doc)
    path.write_text(json.dumps(doc, sort_keys=True, indent=1))


@pytest.mark.parametrize(
    ("field", "kind"),
    [("sha256", "checksum"), ("nbytes", "size"), ("key", "missing")],
)
def test_tampered_record_entry_is_named(field: str, kind: str, reference, copy_of) -> None:
    root = copy_of(reference("single"))

    def edit(doc: dict) -> None:
        entry = doc["entries"]["teachers/a/logits"]
        entry[field] = {
            "sha256": "0" * 64,
            "nbytes": entry["nbytes"] + 1,
            "key": "teachers/a/logits/c/9/0/0",
        }[field]

    _edit_record(root, 3, edit)
    problems = _problems(root)
    assert [(p["kind"], p["where"], p["chunk"]) for p in problems] == [
        (kind, "teachers/a/logits", 3)
    ]


def test_unreadable_record_is_named(reference, copy_of) -> None:
    root = copy_of(reference("single"))
    _record(root, 2).write_bytes(b'{"chunk": 2, "entries": {')
    code, problems = verify_json(root)
    assert code == 1
    assert ("manifest", "manifest/chunk-000002.json") in {(p["kind"], p["where"]) for p in problems}
    assert {p["chunk"] for p in problems if p["kind"] == "uncommitted"} == {2}


def test_verify_checks_record_rows(reference, copy_of) -> None:
    """A record's rows must be those of its chunk."""
    root = copy_of(reference("single"))
    _edit_record(root, 2, lambda doc: doc.update(rows=[64, 97]))  # chunk 2 is rows 64..96
    problems = _problems(root)
    assert [(p["kind"], p["where"], p["chunk"]) for p in problems] == [
        ("manifest", "manifest/chunk-000002.json", 2)
    ]
    assert "rows" in problems[0]["message"]


def test_record_with_a_wrong_chunk_id(reference, copy_of) -> None:
    """The record of chunk 2 claims chunk 3: verify names it, the same dump repairs it."""
    ref = reference("single")
    root = copy_of(ref)
    _edit_record(root, 2, lambda doc: doc.update(chunk=3))
    problems = _problems(root)
    assert "manifest/chunk-000002.json" in {p["where"] for p in problems}, problems
    repaired = invoke(*dump_args(root, "single"), "--json")
    assert repaired.exit_code == 0, repaired.stderr
    assert compare_with_reference(root, ref) == []


def test_verify_notices_a_deleted_static_record(reference, copy_of) -> None:
    """Without manifest/static.json, classifier arrays and metadata are uncommitted."""
    root = copy_of(reference("single"))
    (root / "manifest" / "static.json").unlink()
    assert _problems(root) != []


def test_metadata_named_when_its_static_record_is_damaged(reference, copy_of) -> None:
    """Two damages: the static record and a metadata document it covered; both named
    (verify lists every metadata document left without its entry, and readers refuse a
    document that has none instead of parsing it unchecked)."""
    root = copy_of(reference("single"))
    (root / "manifest" / "static.json").write_bytes(b"{junk")
    doc = root / "labels" / "zarr.json"
    doc.write_bytes(doc.read_bytes().replace(b'"int32"', b'"int64"'))  # still valid JSON
    wheres = {p["where"] for p in _problems(root)}
    assert "manifest/static.json" in wheres
    assert wheres & {"labels/zarr.json", "labels"}, wheres
    assert "labels" in one_error_line(_tune_tau(root))


def test_damaged_record_is_redone_by_the_same_dump(reference, copy_of) -> None:
    """An unreadable record means "not committed": rerunning the dump redoes that chunk."""
    ref = reference("single")
    root = copy_of(ref)
    _record(root, 1).write_bytes(b"\x00garbage")
    result = invoke(*dump_args(root, "single"), "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["chunks_written"] == 1
    assert compare_with_reference(root, ref) == []


def test_overwrite_rebuilds_a_damaged_cache(reference, copy_of) -> None:
    ref = reference("single")
    root = copy_of(ref)
    damage(
        root,
        Target("teachers/a/logits/c/1/0/0", "chunk", "teachers/a/logits", 1),
        "flip",
        random.Random(1),
    )
    # All chunks have records, so a plain rerun has nothing to do; --overwrite rebuilds.
    assert json.loads(invoke(*dump_args(root, "single"), "--json").stdout)["status"] == "complete"
    result = invoke(*dump_args(root, "single"), "--overwrite", "--json")
    assert result.exit_code == 0, result.stderr
    assert compare_with_reference(root, ref) == []


# --------------------------------------------------------------------------- readers refuse


def _distill(root: Path, out: Path) -> object:
    return invoke(
        "distill",
        root,
        "--dataset",
        DATASET,
        "--method",
        "kd",
        "--teacher",
        "a",
        "--epochs",
        "1",
        "--out",
        out,
        "--device",
        "cpu",
        "--no-plots",
    )


def _tune_tau(root: Path) -> object:
    return invoke("tune-tau", root, "--teacher", "a", "--taus", "2", "--dry-run", "--device", "cpu")


@pytest.mark.parametrize("how", [*DAMAGES, "record"])
def test_distill_and_tune_tau_refuse_a_damaged_logits_chunk(
    how: str, reference, copy_of, tmp_path: Path
) -> None:
    root = copy_of(reference("views"))
    rng = random.Random(f"issue7-readers-{how}")
    chunk = rng.randrange(5)
    if how == "record":
        _record(root, chunk).write_bytes(b"{")
        pattern = rf"chunk {chunk}\b"
    else:
        damage(
            root,
            Target(f"teachers/a/logits/c/{chunk}/0/0", "chunk", "teachers/a/logits", chunk),
            how,
            rng,
        )
        pattern = rf"chunk {chunk} of teachers/a/logits .*(corrupt|missing)"
    for result in (_distill(root, tmp_path / "run"), _tune_tau(root)):
        line = one_error_line(result)
        assert re.search(pattern, line), line
    assert not (tmp_path / "run" / "student").exists()  # refused before any training


def test_distill_refuses_damaged_view_seeds(reference, copy_of, tmp_path: Path) -> None:
    """Replayed view seeds are read with their checksums, like the targets."""
    root = copy_of(reference("views"))
    path = root / "views" / "seed" / "c" / "1" / "0"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55  # decodes, with one seed changed
    path.write_bytes(bytes(data))
    line = one_error_line(_distill(root, tmp_path / "run"))
    assert "chunk 1 of views/seed" in line


@pytest.mark.parametrize("command", ["distill", "tune-tau"])
def test_damaged_array_metadata_is_refused_in_one_line(
    command: str, reference, copy_of, tmp_path: Path
) -> None:
    """An array's zarr.json is checked against the manifest before it is parsed."""
    root = copy_of(reference("views"))
    path = root / "teachers" / "a" / "logits" / "zarr.json"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x55
    path.write_bytes(bytes(data))
    result = _distill(root, tmp_path / "run") if command == "distill" else _tune_tau(root)
    assert "teachers/a/logits/zarr.json" in one_error_line(result)


def test_damaged_root_metadata_is_one_line(reference, copy_of, tmp_path: Path) -> None:
    """The root zarr.json (not in the manifest: tune-tau rewrites it) truncated or deleted."""
    root = copy_of(reference("single"))
    (root / "zarr.json").write_bytes((root / "zarr.json").read_bytes()[:100])
    for result in (
        invoke("verify", root, "--json"),
        _distill(root, tmp_path / "r"),
        _tune_tau(root),
        invoke("inspect", root),
    ):
        assert "not a softlabels cache" in one_error_line(result)
