"""Generated arrays kept on disk between processes, keyed by what generated them.

The folder is ``$SOFTLABELS_CACHE_DIR`` if set (an empty value turns the disk cache off),
else ``$XDG_CACHE_HOME/softlabels``, else ``~/.cache/softlabels``. An entry is one ``.npz``
file (no pickles) named by a hash of its key; it also holds the key itself and a sha256 of
its arrays, both checked on every read, so a stale, damaged or foreign file is never used:
the arrays are generated again and the file replaced. Files are written to a unique
temporary name in the same folder, synced, then renamed into place, so processes that
generate the same entry at once never see a partial file (the last rename wins; all write
the same bytes). A folder that cannot be written only costs the time to generate again.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import uuid
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CACHE_ENV", "cache_dir", "cached_arrays", "entry"]

CACHE_ENV = "SOFTLABELS_CACHE_DIR"
_KEY = "__key__"
_DIGEST = "__sha256__"


def cache_dir() -> Path | None:
    """The disk cache folder, or None when ``$SOFTLABELS_CACHE_DIR`` is set but empty."""
    value = os.environ.get(CACHE_ENV)
    if value is not None:
        return Path(value).expanduser() if value.strip() else None
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "softlabels"


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _read(path: Path, key_text: str) -> dict[str, np.ndarray] | None:
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            data = {name: f[name] for name in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None
    if str(data.pop(_KEY, "")) != key_text:
        return None
    digest = str(data.pop(_DIGEST, ""))
    return data if digest == _digest(data) else None


def _write(path: Path, key_text: str, arrays: Mapping[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays, **{_KEY: np.array(key_text), _DIGEST: np.array(_digest(arrays))})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(buf.getbuffer())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def entry(name: str, key: Mapping[str, Any]) -> tuple[Path | None, str]:
    """(the entry's file, or None when the disk cache is off; the key's canonical text)."""
    key_text = json.dumps({"name": name, **key}, sort_keys=True)
    folder = cache_dir()
    if folder is None:
        return None, key_text
    return folder / f"{name}-{hashlib.sha256(key_text.encode()).hexdigest()[:20]}.npz", key_text


def cached_arrays(
    name: str, key: Mapping[str, Any], build: Callable[[], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """The arrays stored under (``name``, ``key``), or ``build()``'s, stored for next time.

    ``key`` must be JSON-able and name everything the arrays depend on (generator version,
    arguments, seeds).
    """
    path, key_text = entry(name, key)
    if path is not None:
        found = _read(path, key_text)
        if found is not None:
            return found
    arrays = build()
    if path is not None:
        # A read-only or full disk: the arrays are still good, just not kept.
        with contextlib.suppress(OSError):
            _write(path, key_text, arrays)
    return arrays
