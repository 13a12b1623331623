"""The memory budget of cached teacher targets (``distill --target-memory``).

A size is a number of bytes with an optional unit: ``K``/``M``/``G``/``T`` (or ``KB`` ...,
powers of 1000) and ``KiB``/``MiB``/``GiB``/``TiB`` (powers of 1024), e.g. ``2GB``,
``1.5GiB``, ``800M``; ``auto`` is half the host memory available now (``MemAvailable``).
The streamed chunks live in host memory whatever the training device, so ``auto`` looks
at the host only.
"""

from __future__ import annotations

import os
import re

from softlabels.errors import UsageError

__all__ = ["AUTO_FRACTION", "available_memory", "parse_size"]

AUTO_FRACTION = 0.5  # of the available host memory, for --target-memory auto

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([A-Za-z]*)\s*$")


def available_memory() -> int:
    """Bytes of host memory available now (``MemAvailable``; physical memory elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def parse_size(text: str | int | None, *, what: str = "--target-memory") -> int | None:
    """Bytes of a size (``None`` stays ``None``: no budget)."""
    if text is None:
        return None
    if isinstance(text, bool):
        raise UsageError(f"Expected {what} a size such as 2GB, 512MiB or auto, got {text!r}")
    if isinstance(text, int):
        value = text
    elif isinstance(text, str) and text.strip().lower() == "auto":
        value = int(available_memory() * AUTO_FRACTION)
    else:
        m = _SIZE.match(text) if isinstance(text, str) else None
        unit = m.group(2).lower() if m else ""
        if m is None or unit not in _UNITS:
            raise UsageError(f"Expected {what} a size such as 2GB, 512MiB or auto, got {text!r}")
        value = int(float(m.group(1)) * _UNITS[unit])
    if value < 1:
        raise UsageError(f"Expected {what} of at least 1 byte, got {text!r}")
    return value
