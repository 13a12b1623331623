"""Model checkpoints: a plain dict that ``torch.load(path, weights_only=True)`` can read.

Layout (version 1)::

    {"format": "softlabels-model", "version": 1,
     "arch": {"name": "resnet32", "kwargs": {...}},   # create_model(name, **kwargs)
     "num_classes": 100,
     "state_dict": {name: tensor, ...},               # CPU tensors
     "extra": {...} | None}                           # tensors, dicts, lists, scalars, str

Written atomically: a temporary file in the same folder, then ``os.replace``, so a reader
never sees half a checkpoint and a crash leaves the previous one in place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from softlabels.errors import SoftlabelsError, SpecError, UsageError
from softlabels.models._registry import create_model
from softlabels.stores.atomic import atomic_file

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "CHECKPOINT_VERSION",
    "load_checkpoint",
    "read_checkpoint",
    "save_checkpoint",
    "unwrap_model",
]

CHECKPOINT_FORMAT = "softlabels-model"
CHECKPOINT_VERSION = 1
#: File name looked for when a checkpoint path is a directory.
CHECKPOINT_NAME = "model.pt"

_LEAVES = (str, int, float, bool, type(None), torch.Tensor)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The module inside DistributedDataParallel / DataParallel / ``torch.compile``."""
    while True:
        if isinstance(model, nn.parallel.DistributedDataParallel | nn.DataParallel):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _check_loadable(value: object, where: str) -> None:
    """Raise unless ``value`` is made only of what ``weights_only=True`` loads."""
    if isinstance(value, _LEAVES):
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str | int):
                raise UsageError(f"Expected str or int keys in {where}, got {type(key).__name__}")
            _check_loadable(item, f"{where}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_loadable(item, f"{where}[{i}]")
        return
    raise UsageError(
        "Expected only tensors, dicts, lists, str, int, float, bool or None, "
        f"got {type(value).__module__}.{type(value).__name__} (at {where})"
    )


def _plain(value: Any) -> Any:
    """Mappings to dicts, tuples to lists: the containers ``weights_only`` loads."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    arch: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights and architecture to ``path`` atomically; return the path.

    ``arch`` is ``{"name": ..., "kwargs": {...}}`` (JSON-able), by default
    ``model.arch_config()``. ``extra`` (epoch, metrics, the run config...) may hold only
    tensors, dicts, lists, str, int, float, bool and None. Parent folders are created.
    """
    path = Path(path)
    model = unwrap_model(model)
    if getattr(model, "is_materialized", True) is False:
        # A lazily sized layer that does not exist yet would be drawn afresh on every load.
        raise UsageError(
            f"Expected a model whose layers all exist, got a {type(model).__name__} whose input "
            "size is not known yet; pass in_features or run one batch before saving"
        )
    if arch is None:
        if not callable(getattr(model, "arch_config", None)):
            raise UsageError(
                f"Expected arch= for a {type(model).__name__}, which has no arch_config()"
            )
        arch = model.arch_config()
    if (
        not isinstance(arch, Mapping)
        or not isinstance(arch.get("name"), str)
        or not isinstance(arch.get("kwargs"), Mapping)
    ):
        raise UsageError(f'Expected arch {{"name": str, "kwargs": dict}}, got {arch!r}')
    try:
        arch = json.loads(json.dumps(arch, allow_nan=False))
    except (TypeError, ValueError) as e:
        raise UsageError(f"Expected a JSON-able arch, got {arch!r} ({e})") from e
    num_classes = arch["kwargs"].get("num_classes")
    if not isinstance(num_classes, int):
        raise UsageError(f"Expected an integer num_classes in arch['kwargs'], got {num_classes!r}")
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise UsageError(f"Expected extra to be a dict or None, got {type(extra).__name__}")
        _check_loadable(extra, "extra")
        extra = _plain(extra)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": arch,
        "num_classes": num_classes,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra,
    }
    with atomic_file(path) as f:
        torch.save(payload, f)
    return path


def _resolve(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise SpecError(f"No model checkpoint at {p}: expected a file written by save_checkpoint")
    return p


def read_checkpoint(
    path: str | os.PathLike[str], map_location: Any = "cpu"
) -> tuple[Path, dict[str, Any]]:
    """Load and check the checkpoint dict at ``path`` (a file or a folder with model.pt)."""
    p = _resolve(path)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # unpickling errors have many types
        text = str(e).strip()
        if "Weights only load failed" in text:
            reason = "it holds objects that torch.load(weights_only=True) refuses"
        else:
            reason = text.splitlines()[0] if text else type(e).__name__
        raise SpecError(f"{p} is not a softlabels model checkpoint ({reason[:200]})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise SpecError(
            f"{p} is not a softlabels model checkpoint (no format {CHECKPOINT_FORMAT!r})"
        )
    version = ckpt.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise SpecError(
            f"{p} has checkpoint version {version!r}; this softlabels reads up to "
            f"{CHECKPOINT_VERSION}: upgrade softlabels"
        )
    arch = ckpt.get("arch")
    if (
        not isinstance(arch, dict)
        or not isinstance(arch.get("name"), str)
        or not isinstance(arch.get("kwargs"), dict)
        or not isinstance(ckpt.get("state_dict"), dict)
    ):
        raise SpecError(f"{p} is a damaged softlabels checkpoint (no arch or state_dict)")
    return p, ckpt


def load_checkpoint(
    path: str | os.PathLike[str], map_location: Any = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model saved at ``path`` with its weights; return ``(model, checkpoint)``.

    The model is in eval mode, on ``map_location`` when that is a device. ``path`` may be a
    folder holding ``model.pt``.
    """
    p, ckpt = read_checkpoint(path, map_location)
    arch = ckpt["arch"]
    try:
        model = create_model(arch["name"], **arch["kwargs"])
    except SoftlabelsError as e:
        raise SpecError(f"Cannot rebuild the model in {p}: {e}") from e
    except TypeError as e:
        raise SpecError(f"Cannot rebuild the model in {p}: {e}") from e
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        reason = " ".join(line.strip() for line in first[:2])[:300]
        raise SpecError(f"Weights in {p} do not fit {arch['name']}: {reason}") from e
    if isinstance(map_location, str | torch.device):
        model.to(map_location)
    return model.eval(), ckpt
