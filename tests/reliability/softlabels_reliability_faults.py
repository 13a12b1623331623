"""Fault injection for the reliability suite (issue 7), shared with ``benchmarks/fault_injection.py``.

Imported by name (this folder has no ``__init__.py``). Everything here runs the real
command line: in-process through Typer's runner, or as ``python -m softlabels`` in a
subprocess that is killed with SIGKILL.

* :func:`run_kill_trial`: start a dump in a subprocess, SIGKILL it at a chosen moment, check
  what it left, rerun the same command (no flags: the dead writer's lock blocks nothing),
  compare with an uninterrupted dump; into a local folder or an ``s3://`` URL (:class:`Where`).
* :func:`run_repeated_kills`: one cache, the same command started and SIGKILLed again and
  again at random moments, then run to the end: the bytes of an uninterrupted dump.
* :class:`DiskFull`: every write of a dump (chunk files, manifest records, tables, zarr
  metadata) counted; the k-th fails with ENOSPC, leaving a partial file as a full disk does.
* :func:`damage_targets` / :func:`damage` / :func:`detected`: damage one file of a cache and
  tell whether ``verify`` named it.
"""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
# 159 training samples (40 ... 4 per class): 5 chunks of 32 rows, 2 batches of 16 each.
DATASET = "mnist1d-lt:imb=10,n_max=40,n_test=6"
OTHER_DATASET = "mnist1d-lt:imb=10,n_max=40,n_test=6,seed=1"
N = 159
CHUNK = 32
BATCH = 16
NUM_CHUNKS = 5
LOCK = ".softlabels.lock"
SLOW = "py:softlabels_reliability_nets:slow"
SLEEP_ENV = "SOFTLABELS_TEST_SLEEP"

# name -> (teachers, views)
KINDS: dict[str, tuple[tuple[str, ...], int]] = {
    "single": ((f"a={SLOW}",), 0),
    "multi": ((f"a={SLOW}", "b=cnn1d"), 0),
    "views": ((f"a={SLOW}",), 3),
    "sparse": ((f"a={SLOW}",), 2),  # with --topk: see KIND_ARGS
}
# More dump arguments of a kind: a sparse teacher (top-3 of 10 classes, METHODS §12).
KIND_ARGS: dict[str, tuple[str, ...]] = {"sparse": ("--topk", "3")}


def dump_args(out: Path | str, kind: str = "single", *extra: object) -> list[str]:
    teachers, views = KINDS[kind]
    extra = (*KIND_ARGS.get(kind, ()), *extra)
    args: list[object] = ["dump", "--dataset", DATASET]
    for t in teachers:
        args += ["--teacher", t]
    args += ["--out", out, "--chunk-size", CHUNK, "--batch-size", BATCH, "--device", "cpu"]
    if views:
        args += ["--views", views]
    return [str(a) for a in (*args, *extra)]


def forwards_per_chunk(kind: str) -> int:
    """Sleeping teacher calls per chunk (2 batches of 16 rows per view)."""
    _teachers, views = KINDS[kind]
    return 2 * max(1, views)


_runner = CliRunner()


def invoke(*args: object, catch: bool = False) -> Result:
    """The ``softlabels`` command line in-process (stderr kept apart from stdout).

    An unexpected exception (a traceback) propagates, unless ``catch``: then it is in
    ``result.exception`` and the exit code is 1.
    """
    from softlabels.cli.app import app

    return _runner.invoke(app, [str(a) for a in args], catch_exceptions=catch)


def one_error_line(result: Result, code: int = 2) -> str:
    """Assert an expected error: exit ``code``, no traceback, one ``error:`` line, last on stderr."""
    assert result.exit_code == code, (result.exit_code, result.stdout[-2000:], result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], result.stderr
    return errors[0]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


# --------------------------------------------------------------------------- cache files


def cache_files(root: Path, *, hidden: bool = False) -> dict[str, bytes]:
    """Every file of a cache folder by relative path; hidden names (lock, temp files) left out."""
    out: dict[str, bytes] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            if hidden or not any(part.startswith(".") for part in rel.split("/")):
                out[rel] = path.read_bytes()
    return out


def manifest_shas(root: Path) -> dict[str, str]:
    """key -> sha256 of every entry of every readable manifest record."""
    out: dict[str, str] = {}
    for rec in sorted((root / "manifest").glob("*.json")) if (root / "manifest").is_dir() else []:
        try:
            doc = json.loads(rec.read_bytes())
        except ValueError:
            continue
        for entry in doc.get("entries", {}).values():
            out[entry["key"]] = entry["sha256"]
    return out


def committed_snapshot(root: Path) -> dict[str, bytes]:
    """What is committed now: each readable manifest record and every file it covers."""
    snap: dict[str, bytes] = {}
    folder = root / "manifest"
    if not folder.is_dir():
        return snap
    for rec in sorted(folder.glob("*.json")):
        data = rec.read_bytes()
        try:
            doc = json.loads(data)
        except ValueError:
            continue
        snap[f"manifest/{rec.name}"] = data
        for entry in doc.get("entries", {}).values():
            path = root / entry["key"]
            snap[entry["key"]] = path.read_bytes() if path.exists() else b"<missing>"
    return snap


def lost(snapshot: dict[str, bytes], root: Path) -> list[str]:
    """Files committed in ``snapshot`` that are now missing or changed (must be empty)."""
    out = []
    for key, data in snapshot.items():
        path = root / key
        if not path.is_file() or path.read_bytes() != data:
            out.append(key)
    return out


def compare_with_reference(out: Path, reference: Path) -> list[str]:
    """Differences between a finished cache and an uninterrupted one (empty when identical)."""
    got, want = cache_files(out), cache_files(reference)
    diffs = [f"missing {k}" for k in sorted(set(want) - set(got))]
    diffs += [f"extra {k}" for k in sorted(set(got) - set(want))]
    diffs += [f"differs {k}" for k in sorted(set(got) & set(want)) if got[k] != want[k]]
    if manifest_shas(out) != manifest_shas(reference):
        diffs.append("manifest sha256 entries differ")
    return diffs


# --------------------------------------------------------------------------- kill -9


class Where:
    """Where a killed dump writes: a local folder, or ``s3://`` on a test server (then
    ``folder`` holds a local copy, fetched by :meth:`local`, for the byte comparisons)."""

    def __init__(self, folder: Path, s3: Any = None) -> None:
        self.folder, self.s3 = folder, s3
        self.target = s3.url(f"{folder.parent.name}-{folder.name}") if s3 else str(folder)
        self._fs = s3.fs() if s3 else None

    @property
    def cwd(self) -> Path:
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        return self.folder.parent

    def env(self) -> dict[str, str]:
        return dict(self.s3.env) if self.s3 else {}

    def exists(self, key: str) -> bool:
        if self._fs is None:
            return (self.folder / key).exists()
        path = f"{self.target}/{key}"
        self._fs.invalidate_cache(path)
        return bool(self._fs.exists(path))

    def lock_doc(self) -> dict[str, Any] | None:
        try:
            if self._fs is None:
                return json.loads((self.folder / LOCK).read_bytes())
            return json.loads(self._fs.cat_file(f"{self.target}/{LOCK}"))
        except (OSError, ValueError):
            return None

    def local(self) -> Path:
        """The cache as local files (for S3: a fresh download into ``folder``)."""
        if self._fs is None:
            return self.folder
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self._fs.invalidate_cache()
        for path in self._fs.find(self.target):
            rel = path[len(self.target.removeprefix("s3://")) + 1 :]
            dest = self.folder / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(self._fs.cat_file(path))
        return self.folder

    def remove(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)
        if self._fs is not None and self._fs.exists(self.target):
            self._fs.rm(self.target, recursive=True)


@dataclass
class KillTrial:
    """One dump killed with SIGKILL and rerun (the same command); ``ok`` when every check held."""

    kind: str
    strategy: str  # "early" (as soon as the lock exists), "random", "last" (in the last chunk)
    anchor: str  # the file whose appearance started the delay
    delay: float  # seconds after the anchor appeared
    killed: bool  # False: the dump had finished before the signal
    commits_before: int  # chunk records committed when it died
    target: str = "local"  # "local" or "s3"
    # verify's problems right after the kill, besides what was not committed (must be none)
    damaged_after_kill: list[str] = field(default_factory=list)
    lock_left: bool = False  # the killed writer's lock file (its OS lock died with it)
    rerun_notes: list[str] = field(default_factory=list)  # "note:" lines of the rerun
    resumed_exit: int | None = None
    resumed_status: str | None = None
    differences: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.damaged_after_kill
            and self.resumed_exit == 0
            and not self.differences
            and not self.lost
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


# Files whose appearance marks a step of a dump: creating the cache, then each commit.
SETUP_ANCHORS = (LOCK, "zarr.json", "labels/zarr.json", "samples.parquet", "manifest/tables.json")
ANCHORS = (
    *SETUP_ANCHORS,
    "manifest/static.json",
    *(f"manifest/chunk-{c:06d}.json" for c in range(NUM_CHUNKS - 1)),
)


def _chunk_records(root: Path) -> int:
    folder = root / "manifest"
    return len(list(folder.glob("chunk-*.json"))) if folder.is_dir() else 0


def _damage_after_kill(target: str) -> tuple[list[str], str]:
    """verify's problems besides what was not committed yet (must be none), and a note."""
    from softlabels.errors import SoftlabelsError
    from softlabels.stores.cache import Cache

    try:
        problems = Cache(target).verify()
    except SoftlabelsError as exc:  # killed before the root attributes existed
        return [], f" (not yet a cache after the kill: {exc})"
    # Not committed yet (chunks, or the tables before their record) is fine; damage is not.
    return [
        p.message
        for p in problems
        if p.kind != "uncommitted" and "no manifest entry" not in p.message
    ], ""


def _rerun(where: Where, kind: str, trial: KillTrial | RepeatedKills, reference: Path) -> None:
    """The same command again, no flags, in-process: it must finish the cache."""
    rerun = invoke(*dump_args(where.target, kind), "--json")
    trial.resumed_exit = rerun.exit_code
    trial.rerun_notes = [ln for ln in rerun.stderr.splitlines() if ln.startswith("note:")]
    if rerun.exit_code == 0:
        trial.resumed_status = json.loads(rerun.stdout)["status"]
        trial.differences = compare_with_reference(where.local(), reference)
        if where.exists(LOCK):
            trial.differences.append("lock file left after the rerun")
    else:
        trial.note += f" rerun failed: {rerun.stderr.strip()[-300:]}"


def run_kill_trial(
    out: Path,
    reference: Path,
    kind: str,
    strategy: str,
    rng: random.Random,
    *,
    sleep: float = 0.04,
    timeout: float = 180.0,
    s3: Any = None,
) -> KillTrial:
    """SIGKILL ``softlabels dump`` (subprocess) at a moment picked by ``strategy``, then rerun.

    The subprocess teacher sleeps ``sleep`` s per batch. The signal goes a random delay after
    an *anchor* file appears: ``early``: the lock file, no delay (nothing written yet);
    ``last``: the record of the second-to-last chunk, then within the first half of the last
    chunk's compute; ``random``: an anchor drawn from :data:`ANCHORS` (steps of creating the
    cache, then each chunk's commit), then a delay over that step (up to one chunk's compute
    after a commit, so kills also land while the next chunk is being written and committed).
    The rerun is the same command, in-process, without any flag: it must finish to the
    bytes of ``reference``. With ``s3`` (a test server), the cache is ``s3://`` and ``out``
    a local folder for copies of it.
    """
    t0 = time.monotonic()
    where = Where(out, s3)
    per_chunk = forwards_per_chunk(kind) * sleep
    last = ANCHORS[-1]
    if strategy == "early":
        anchor, window = LOCK, 0.0
    elif strategy == "last":
        anchor, window = last, 0.5 * per_chunk
    elif strategy == "random":
        anchor = rng.choice(ANCHORS)
        setup = anchor in SETUP_ANCHORS
        window = 0.02 if setup else 0.5 * per_chunk if anchor == last else per_chunk
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    delay = rng.uniform(0.0, window)
    cmd = [sys.executable, "-m", "softlabels", *dump_args(where.target, kind), "--json"]
    env = subprocess_env(**{SLEEP_ENV: str(sleep)}, **where.env())
    poll = 0.002 if s3 is None else 0.01
    with subprocess.Popen(
        cmd, env=env, cwd=where.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    ) as proc:
        try:
            deadline = time.monotonic() + timeout
            while not where.exists(anchor) and proc.poll() is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the dump into {where.target} never wrote {anchor}")
                time.sleep(poll)
            time.sleep(delay)
            killed = proc.poll() is None
        finally:
            proc.kill()  # SIGKILL; a no-op when it has already ended
            _, err = proc.communicate()
    local = where.local()
    trial = KillTrial(
        kind, strategy, anchor, round(delay, 4), killed, _chunk_records(local),
        target="s3" if s3 else "local",
    )  # fmt: skip
    if killed and proc.returncode != -signal.SIGKILL:
        trial.note = f"exit {proc.returncode}: {err.decode(errors='replace')[-300:]}"
    if not killed and proc.returncode != 0:
        trial.note = f"the dump failed on its own: {err.decode(errors='replace')[-300:]}"
    snapshot = committed_snapshot(local)
    trial.damaged_after_kill, note = _damage_after_kill(where.target)
    trial.note += note
    trial.lock_left = where.exists(LOCK)
    _rerun(where, kind, trial, reference)
    trial.lost = lost(snapshot, where.local())
    trial.seconds = round(time.monotonic() - t0, 2)
    return trial


@dataclass
class RepeatedKills:
    """One cache, the same command SIGKILLed ``kills`` times, then run to its end."""

    kind: str
    kills: int
    delivered: int = 0  # signals that found the dump still running
    commits_at_kill: list[int] = field(default_factory=list)
    damaged_after_kill: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)  # committed before a kill, changed after
    rerun_notes: list[str] = field(default_factory=list)
    resumed_exit: int | None = None
    resumed_status: str | None = None
    differences: list[str] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""

    @property
    def ok(self) -> bool:
        return (
            self.delivered == self.kills
            and not self.damaged_after_kill
            and not self.lost
            and self.resumed_exit == 0
            and not self.differences
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def run_repeated_kills(
    out: Path,
    reference: Path,
    kind: str,
    kills: int,
    rng: random.Random,
    *,
    sleep: float = 0.04,
    timeout: float = 180.0,
    s3: Any = None,
) -> RepeatedKills:
    """Start the same ``softlabels dump`` command ``kills`` times, each SIGKILLed at a random
    moment of what is left: the k-th of its pending chunks drawn uniformly (not the last), the
    run killed a uniform delay (up to 90 % of one chunk's compute) after it took the lock
    (k = 0) or after it committed the chunk before that one, so kills land in setups, chunks and commits all
    along the dump; then run it once more to its end (in-process) and compare with
    ``reference``. Each run resumes what the ones before committed, with no flag."""
    t0 = time.monotonic()
    where = Where(out, s3)
    result = RepeatedKills(kind, kills)
    per_chunk = forwards_per_chunk(kind) * sleep
    cmd = [sys.executable, "-m", "softlabels", *dump_args(where.target, kind), "--json"]
    env = subprocess_env(**{SLEEP_ENV: str(sleep)}, **where.env())
    snapshot: dict[str, bytes] = {}

    def record(chunk: int) -> str:
        return f"manifest/chunk-{chunk:06d}.json"

    for _ in range(kills):
        pending = [c for c in range(NUM_CHUNKS) if not where.exists(record(c))]
        # Killed in pending chunk k, never in the last one: the run must not end first.
        k = rng.randrange(max(1, len(pending) - 1))
        delay = rng.uniform(0.0, 0.9 * per_chunk)

        def reached(pid: int, k: int = k, pending: list[int] = pending) -> bool:
            if k == 0:
                return (where.lock_doc() or {}).get("pid") == pid
            return where.exists(record(pending[k - 1]))

        with subprocess.Popen(
            cmd, env=env, cwd=where.cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        ) as proc:
            try:
                deadline = time.monotonic() + timeout
                while proc.poll() is None and not reached(proc.pid):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the dump into {where.target} made no progress")
                    time.sleep(0.002)
                time.sleep(delay)
                result.delivered += proc.poll() is None
            finally:
                proc.kill()
                _, err = proc.communicate()
        if proc.returncode not in (-signal.SIGKILL, 0):
            result.note += f" exit {proc.returncode}: {err.decode(errors='replace')[-200:]}"
        local = where.local()
        result.commits_at_kill.append(_chunk_records(local))
        result.lost += [k for k in lost(snapshot, local) if k not in result.lost]
        snapshot |= committed_snapshot(local)
        damaged, note = _damage_after_kill(where.target)
        result.damaged_after_kill += damaged
        result.note += note
    _rerun(where, kind, result, reference)
    result.lost += [k for k in lost(snapshot, where.local()) if k not in result.lost]
    result.seconds = round(time.monotonic() - t0, 2)
    return result


# --------------------------------------------------------------------------- full disk


class DiskFull:
    """Fail the ``fail_at``-th write (0-based) of everything a dump writes with ENOSPC.

    Counted: ``Location.write`` (chunk files), ``Location.write_atomic`` (manifest records,
    Parquet tables, root attributes, array and group metadata) and zarr's local ``_put``
    (what goes through zarr: other codec chains, static arrays of more than one chunk). The failing write leaves what a full disk leaves: half the bytes of a
    plain write, a half-written temp file of an atomic one. ``fail_at=None`` only counts;
    ``keys`` lists the keys written, in order. Every write after the failing one fails too
    (the disk stays full) until the context ends.
    """

    def __init__(self, fail_at: int | None) -> None:
        self.fail_at = fail_at
        self.count = 0
        self.keys: list[str] = []
        self.failed_key: str | None = None
        self._lock = threading.Lock()
        self._saved: list[tuple[Any, str, Any]] = []

    def _full(self, key: str) -> bool:
        with self._lock:
            n = self.count
            self.count += 1
            self.keys.append(key)
            if self.fail_at is None or n < self.fail_at:
                return False
            if self.failed_key is None:
                self.failed_key = key
            return True

    @staticmethod
    def _error(key: str) -> OSError:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), key)

    def __enter__(self) -> DiskFull:
        import zarr.storage._local as zlocal

        from softlabels.stores._fs import Location

        write, write_atomic, put = Location.write, Location.write_atomic, zlocal._put
        disk = self

        def full_write(loc: Any, key: str, data: bytes) -> None:
            if disk._full(key):
                if loc.is_local:
                    write(loc, key, data[: len(data) // 2])
                raise disk._error(key)
            write(loc, key, data)

        def full_write_atomic(loc: Any, key: str, data: bytes) -> None:
            if disk._full(key):
                if loc.is_local:
                    path = Path(loc.path(key))
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
                    tmp.write_bytes(data[: len(data) // 2])
                raise disk._error(key)
            write_atomic(loc, key, data)

        def full_put(path: Path, value: Any, exclusive: bool = False) -> int:
            if disk._full(f"zarr:{Path(path).as_posix()}"):
                raise disk._error(str(path))
            return int(put(path, value, exclusive=exclusive))

        self._saved = [
            (Location, "write", write),
            (Location, "write_atomic", write_atomic),
            (zlocal, "_put", put),
        ]
        Location.write = full_write  # type: ignore[method-assign]
        Location.write_atomic = full_write_atomic  # type: ignore[method-assign]
        zlocal._put = full_put
        return self

    def __exit__(self, *exc: object) -> None:
        for owner, name, value in self._saved:
            setattr(owner, name, value)
        self._saved = []


@dataclass
class DiskFullTrial:
    kind: str
    fail_at: int
    failed_key: str | None
    exit_code: int
    error: str
    lock_left: bool
    resumed_exit: int
    resumed_error: str
    differences: list[str]
    lost: list[str]

    @property
    def ok(self) -> bool:
        return (
            self.exit_code == 1
            and self.error.startswith("error:")
            and "No space left on device" in self.error
            and not self.lock_left
            and self.resumed_exit == 0
            and not self.differences
            and not self.lost
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def run_disk_full_trial(out: Path, reference: Path, kind: str, fail_at: int) -> DiskFullTrial:
    """Dump (in-process CLI) with the ``fail_at``-th write failing, then resume with space."""
    with DiskFull(fail_at) as disk:
        first = invoke(*dump_args(out, kind), "--json")
    lines = [ln for ln in first.stderr.splitlines() if ln.strip()]
    error = lines[-1] if len(lines) == 1 and "Traceback" not in first.stderr else first.stderr
    snapshot = committed_snapshot(out)
    lock_left = (out / LOCK).exists()
    second = invoke(*dump_args(out, kind), "--json")
    differences = compare_with_reference(out, reference) if second.exit_code == 0 else []
    return DiskFullTrial(
        kind=kind,
        fail_at=fail_at,
        failed_key=disk.failed_key,
        exit_code=first.exit_code,
        error=error.strip(),
        lock_left=lock_left,
        resumed_exit=second.exit_code,
        resumed_error=second.stderr.strip()[-400:],
        differences=differences,
        lost=lost(snapshot, out),
    )


def count_writes(out: Path, kind: str) -> list[str]:
    """The keys an uninterrupted dump writes, in order (the injection points)."""
    with DiskFull(None) as disk:
        result = invoke(*dump_args(out, kind), "--json")
    assert result.exit_code == 0, result.stderr
    return disk.keys


# --------------------------------------------------------------------------- damage


@dataclass(frozen=True)
class Target:
    """A file of a cache that can be damaged, and what verify must name for it."""

    key: str  # path relative to the cache root
    kind: str  # "chunk", "table", "metadata", "static", "record"
    where: str  # the array, table, metadata key, or manifest/<record>
    chunk: int | None = None
    covers: tuple[str, ...] = ()  # for a record: the entries it commits


def damage_targets(root: Path) -> list[Target]:
    """Every file the manifest covers, and every manifest record, of a sound cache."""
    out: list[Target] = []
    for rec in sorted((root / "manifest").glob("*.json")):
        doc = json.loads(rec.read_bytes())
        chunk = doc.get("chunk")
        entries = doc["entries"]
        out.append(
            Target(
                f"manifest/{rec.name}",
                "record",
                f"manifest/{rec.name}",
                chunk,
                tuple(sorted(entries)),
            )
        )
        for name, entry in sorted(entries.items()):
            if chunk is not None:
                out.append(Target(entry["key"], "chunk", name, chunk))
            elif name.endswith(".parquet"):
                out.append(Target(entry["key"], "table", name))
            elif name.endswith("zarr.json"):
                out.append(Target(entry["key"], "metadata", name))
            else:
                out.append(Target(entry["key"], "static", name))
    return out


DAMAGES = ("flip", "truncate", "delete")


def damage(root: Path, target: Target, how: str, rng: random.Random) -> str:
    """Damage one file in place; returns a description."""
    path = root / target.key
    data = path.read_bytes()
    if how == "flip":
        i = rng.randrange(len(data))
        x = rng.randrange(1, 256)
        path.write_bytes(data[:i] + bytes([data[i] ^ x]) + data[i + 1 :])
        return f"flip byte {i} of {target.key} (xor {x:#04x})"
    if how == "truncate":
        n = rng.randrange(len(data))
        path.write_bytes(data[:n])
        return f"truncate {target.key} to {n} of {len(data)} bytes"
    if how == "delete":
        path.unlink()
        return f"delete {target.key}"
    raise ValueError(f"unknown damage {how!r}")


def detected(problems: Sequence[dict[str, Any]], target: Target) -> bool:
    """Whether verify's problems name the damaged target."""
    for p in problems:
        if target.kind == "chunk" and (p["where"], p["chunk"]) == (target.where, target.chunk):
            return True
        if target.kind in ("table", "metadata", "static") and p["where"] == target.where:
            return True
        if target.kind == "record":
            if p["where"] == target.where:
                return True
            if target.chunk is not None and p["chunk"] == target.chunk:
                return True
            if target.chunk is None and p["where"] in target.covers:
                return True
    return False


def verify_json(root: Path) -> tuple[int, list[dict[str, Any]]]:
    result = invoke("verify", root, "--json")
    if result.exit_code not in (0, 1):
        return result.exit_code, [
            {"kind": "error", "where": "", "chunk": None, "message": result.stderr.strip()}
        ]
    return result.exit_code, json.loads(result.stdout)["problems"]


# --------------------------------------------------------------------------- misc


def wait_for(
    predicate: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, timeout: float = 180.0
) -> None:
    """Poll ``predicate`` every 2 ms while ``proc`` runs."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AssertionError(f"{what}: the process ended first (exit {proc.returncode}): {err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: timed out")
        time.sleep(0.002)


def tmpfs_available() -> str | None:
    """Why a private tmpfs cannot be mounted here (None when it can)."""
    import shutil

    if sys.platform != "linux" or shutil.which("unshare") is None:
        return "needs Linux with unshare"
    probe = subprocess.run(
        [
            "unshare",
            "--user",
            "--map-root-user",
            "--mount",
            "sh",
            "-c",
            'd=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs "$d" && umount "$d"; rc=$?; rmdir "$d"; exit $rc',
        ],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if probe.returncode != 0:
        return (
            f"cannot mount a private tmpfs: {probe.stderr.decode(errors='replace').strip()[:200]}"
        )
    return None
