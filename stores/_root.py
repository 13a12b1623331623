"""The root document ``zarr.json``: the group whose attribute ``softlabels`` holds the
cache's metadata (:class:`~softlabels.stores.schema.CacheMeta` as a JSON object)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from softlabels.stores._fs import Location
from softlabels.stores.errors import CacheError
from softlabels.stores.schema import ROOT_ATTR, ROOT_DOC, CacheMeta

__all__ = ["create_root", "parse_meta", "read_root_attrs", "rewrite_root_attrs"]


def read_root_attrs(loc: Location) -> dict[str, Any] | None:
    """The ``softlabels`` attribute as read (a plain dict); None when there is no cache."""
    if not loc.exists(ROOT_DOC):
        return None
    try:
        doc = json.loads(loc.read(ROOT_DOC))
    except ValueError:
        return None
    attrs = doc.get("attributes", {}).get(ROOT_ATTR) if isinstance(doc, dict) else None
    return dict(attrs) if isinstance(attrs, dict) else None


def parse_meta(loc: Location, attrs: Mapping[str, Any]) -> CacheMeta:
    """The record of a cache's root metadata; a one-line CacheError naming the bad key."""
    try:
        return CacheMeta.from_dict(attrs)
    except CacheError as exc:
        raise CacheError(
            f"{loc.url} has damaged metadata in its root {ROOT_DOC}: {exc}; redo the dump"
        ) from None


def _encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, indent=2, allow_nan=False).encode()


def create_root(loc: Location, meta: dict[str, Any]) -> None:
    """Write the root document once, with its attributes, atomically: a crash leaves either
    no cache or a cache that resumes (never a group without the softlabels key)."""
    doc = {"zarr_format": 3, "node_type": "group", "attributes": {ROOT_ATTR: meta}}
    loc.write_atomic(ROOT_DOC, _encode(doc))


def rewrite_root_attrs(loc: Location, meta: dict[str, Any]) -> None:
    """Replace the ``softlabels`` attribute (the caller holds the write lock)."""
    doc = json.loads(loc.read(ROOT_DOC))
    doc["attributes"][ROOT_ATTR] = meta
    loc.write_atomic(ROOT_DOC, _encode(doc))
