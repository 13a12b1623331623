"""Model specs: one string names any teacher or student ``softlabels`` can run.

=========================  ===============================================================
spec                       what it loads
=========================  ===============================================================
``runs/t1/model.pt``       a softlabels checkpoint (any existing file; or a folder that
                           holds ``model.pt``)
``tv:NAME[@WEIGHTS.pt]``   ``torchvision.models.get_model(NAME, weights=None,
                           num_classes=...)``, then the state dict in WEIGHTS.pt (loaded
                           with ``weights_only=True``); nothing is ever downloaded
``ts:FILE``                a TorchScript file (``torch.jit.load``)
``py:MODULE:CALLABLE``     ``MODULE.CALLABLE(num_classes=..., in_channels=...)`` (only the
                           arguments its signature takes); must return an ``nn.Module``
``resnet32``               a registered architecture, freshly initialised with ``seed``
=========================  ===============================================================

Features are the input of the final classifier layer. Built-in models give them through
``features``/``fc``; other modules through a forward pre-hook on their last ``nn.Linear``
whose ``out_features`` is the number of outputs, checked on the first batch: the captured
features times the layer's weight plus its bias must reproduce the logits.
"""

from __future__ import annotations

import importlib
import inspect
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from softlabels.errors import SoftlabelsError, SpecError
from softlabels.models._base import ClassifierNet
from softlabels.models._registry import create_model, is_model, list_models
from softlabels.models.checkpoint import CHECKPOINT_NAME, load_checkpoint

__all__ = ["LoadedModel", "load_model"]

_Resolved = tuple[nn.Module, dict[str, Any]]

_FORMS = "a checkpoint path, tv:NAME[@WEIGHTS.pt], ts:FILE, py:MODULE:CALLABLE or a model name"


def _first_line(e: BaseException, limit: int = 200) -> str:
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


# --------------------------------------------------------------------------- adapters


class _Adapter:
    """How a module yields ``(logits, features)`` and its classifier."""

    feature_dim: int | None = None
    classifier_kind: str | None = None
    cosine_scale: float | None = None

    def __init__(self, module: nn.Module, spec: str) -> None:
        self.module = module
        self.spec = spec
        self.checked = False

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return _logits(self.module(x), self.spec), None

    def classifier(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return None

    def close(self) -> None:
        """Remove any hooks this adapter put on the module."""


def _logits(out: object, spec: str) -> torch.Tensor:
    if not isinstance(out, torch.Tensor):
        raise SpecError(f"Expected {spec} to return a logits tensor, got {type(out).__name__}")
    return out


def _weight_and_bias(fc: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    weight = fc.weight.detach().clone()
    bias = getattr(fc, "bias", None)
    if bias is None:
        return weight, torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)
    return weight, bias.detach().clone()


class _FeaturesFc(_Adapter):
    """Modules with ``features(x) -> [B, D]`` and ``fc`` (built-ins, scripted built-ins)."""

    def __init__(self, module: nn.Module, spec: str, fc: nn.Module) -> None:
        super().__init__(module, spec)
        self.fc = fc
        self.feature_dim = int(fc.weight.shape[1])
        cosine = getattr(fc, "original_name", type(fc).__name__) == "CosineClassifier"
        self.classifier_kind = "cosine" if cosine else "linear"
        self.cosine_scale = float(fc.scale) if cosine else None

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats = self.module.features(x)
        if not self.checked:
            if not isinstance(feats, torch.Tensor) or feats.dim() != 2:
                shape = tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats)
                raise SpecError(f"Expected features [B, D] from {self.spec}, got {shape}")
            self.checked = True
        return self.fc(feats), feats

    def classifier(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return _weight_and_bias(self.fc)


class _Hooked(_Adapter):
    """Generic modules: a forward pre-hook on the final ``nn.Linear`` captures its input."""

    classifier_kind = "linear"

    def __init__(self, module: nn.Module, spec: str, fc: nn.Linear) -> None:
        super().__init__(module, spec)
        self.fc = fc
        self.feature_dim = int(fc.in_features)
        self._captured: torch.Tensor | None = None
        self._active = False  # capture only inside run(), not on direct module calls
        self._handle = fc.register_forward_pre_hook(self._hook)

    def _hook(self, _module: nn.Module, inputs: tuple[Any, ...]) -> None:
        if self._active and inputs and isinstance(inputs[0], torch.Tensor):
            self._captured = inputs[0]

    def run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        self._captured = None
        self._active = True
        try:
            logits = _logits(self.module(x), self.spec)
            feats = self._captured
        finally:
            self._active = False
            self._captured = None
        if not self.checked:
            self._check(logits, feats)
            self.checked = True
        return logits, feats

    def _check(self, logits: torch.Tensor, feats: torch.Tensor | None) -> None:
        advice = "load it with with_features=False to use its logits only"
        if feats is None:
            raise SpecError(f"The final nn.Linear of {self.spec} was not called; {advice}")
        with torch.no_grad():
            w, b = _weight_and_bias(self.fc)
            rebuilt = F.linear(feats.float(), w.float(), b.float())
            same_shape = rebuilt.shape == logits.shape and feats.dim() == 2
            tol = 1e-3 * max(1.0, float(logits.detach().abs().max())) if logits.numel() else 0
            if not same_shape or not torch.allclose(rebuilt, logits.float(), rtol=1e-3, atol=tol):
                raise SpecError(
                    f"The final nn.Linear of {self.spec} does not reproduce its logits "
                    f"(features {tuple(feats.shape)}, logits {tuple(logits.shape)}); {advice}"
                )

    def classifier(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        return _weight_and_bias(self.fc)

    def close(self) -> None:
        self._handle.remove()


def _final_linear(module: nn.Module, num_classes: int | None) -> nn.Linear | None:
    """Last ``nn.Linear`` in ``modules()`` order with ``num_classes`` outputs (any, if None)."""
    found = None
    for m in module.modules():
        if isinstance(m, nn.Linear) and (num_classes is None or m.out_features == num_classes):
            found = m
    return found


def _has_features_fc(module: nn.Module) -> bool:
    fc = getattr(module, "fc", None)
    return callable(getattr(module, "features", None)) and isinstance(
        getattr(fc, "weight", None), torch.Tensor
    )


# --------------------------------------------------------------------------- LoadedModel


@dataclass
class LoadedModel:
    """A model ready for inference, with its features and classifier when it has them.

    ``module`` is in eval mode on the requested device. ``arch`` is a JSON-able
    description: ``kind`` (softlabels, torchvision, torchscript, python), ``name``,
    ``num_classes``, ``feature_dim``, ``classifier`` ("linear", "cosine" or None),
    ``cosine_scale`` (for cosine: ``z = scale * normalize(W) @ normalize(v)``), plus
    ``config`` (the ``create_model`` recipe) for built-ins and ``source`` for files.
    ``forward`` does not switch off autograd: call it under ``torch.inference_mode()``.
    """

    module: nn.Module = field(repr=False)
    spec: str
    arch: dict[str, Any]
    _adapter: _Adapter = field(repr=False)

    @classmethod
    def from_module(
        cls,
        module: nn.Module,
        *,
        spec: str = "<module>",
        num_classes: int | None = None,
        with_features: bool = True,
        arch: dict[str, Any] | None = None,
    ) -> LoadedModel:
        """Wrap an in-memory module (put in eval mode) as :func:`load_model` would."""
        module.eval()
        adapter = _make_adapter(module, spec, num_classes, with_features)
        info: dict[str, Any] = {"kind": "python", "name": type(module).__name__}
        if isinstance(module, ClassifierNet):
            info = {"kind": "softlabels", "name": module.arch_name}
        info.update(arch or {})
        fc = getattr(adapter, "fc", None)
        out = int(fc.weight.shape[0]) if fc is not None else num_classes
        _check_num_classes(spec, num_classes, out)
        info.update(
            num_classes=out,
            feature_dim=adapter.feature_dim,
            classifier=adapter.classifier_kind,
            cosine_scale=adapter.cosine_scale,
        )
        if isinstance(module, ClassifierNet):
            info.setdefault("config", module.arch_config())
        return cls(module=module, spec=spec, arch=info, _adapter=adapter)

    @property
    def num_classes(self) -> int | None:
        return self.arch.get("num_classes")

    @property
    def feature_dim(self) -> int | None:
        return self.arch.get("feature_dim")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(logits [B, C], features [B, D] or None)`` for a batch."""
        logits, feats = self._adapter.run(x)
        expected = self.arch.get("num_classes")
        if expected is not None and logits.shape[-1] != expected:
            raise SpecError(f"Expected {expected} outputs from {self.spec}, got {logits.shape[-1]}")
        return logits, feats

    __call__ = forward

    def classifier(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The final layer as ``(weight [C, D], bias [C])`` (copies), or None.

        A cosine classifier gives its raw weight and a zero bias; ``arch["classifier"]`` is
        then "cosine" and ``arch["cosine_scale"]`` its scale.
        """
        return self._adapter.classifier()

    def close(self) -> None:
        """Remove the feature hook (if any), e.g. before training ``module`` further."""
        self._adapter.close()

    def check(self, x: torch.Tensor) -> None:
        """Run ``x`` once without autograd, checking outputs and features (raises SpecError)."""
        with torch.no_grad():
            self.forward(x)


def _make_adapter(
    module: nn.Module, spec: str, num_classes: int | None, with_features: bool
) -> _Adapter:
    if not with_features:
        return _Adapter(module, spec)
    if isinstance(module, ClassifierNet) or (
        isinstance(module, torch.jit.ScriptModule) and _has_features_fc(module)
    ):
        return _FeaturesFc(module, spec, module.fc)
    if isinstance(module, torch.jit.ScriptModule):
        return _Adapter(module, spec)
    fc = _final_linear(module, num_classes)
    if fc is None:
        return _Adapter(module, spec)
    return _Hooked(module, spec, fc)


# --------------------------------------------------------------------------- resolvers


def _check_num_classes(spec: str, expected: int | None, got: int | None) -> None:
    if expected is not None and got is not None and expected != got:
        raise SpecError(f"Expected a model with {expected} classes, got {got} ({spec})")


def _from_checkpoint(path: Path, num_classes: int | None, in_channels: int | None) -> _Resolved:
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    model, ckpt = load_checkpoint(path)
    _check_num_classes(str(path), num_classes, ckpt.get("num_classes"))
    kwargs = ckpt["arch"]["kwargs"]
    uses_channels = getattr(model, "uses_in_channels", True)
    if in_channels is not None and uses_channels and kwargs.get("in_channels") != in_channels:
        raise SpecError(
            f"Expected a model for {in_channels} input channels, "
            f"got {kwargs.get('in_channels')} ({path})"
        )
    return model, {"source": str(path), "config": ckpt["arch"]}


def _from_torchvision(rest: str, num_classes: int | None) -> _Resolved:
    name, _, weights = rest.partition("@")
    if not name:
        raise SpecError(f"Expected tv:NAME[@WEIGHTS.pt], got 'tv:{rest}'")
    if weights and not Path(weights).is_file():
        raise SpecError(f"No weights file at {weights} (tv:{rest})")
    try:
        import torchvision.models as tvm
    except ImportError as e:  # pragma: no cover - torchvision is a dependency
        raise SpecError(f"tv: specs need torchvision: pip install torchvision ({e})") from e
    if name not in tvm.list_models():
        raise SpecError(f"Unknown torchvision model {name!r}; see torchvision.models.list_models()")
    kwargs: dict[str, Any] = {"weights": None}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    try:
        model = tvm.get_model(name, **kwargs)
    except Exception as e:
        raise SpecError(f"Cannot build torchvision {name}: {_first_line(e)}") from e
    info: dict[str, Any] = {"name": name}
    if weights:
        try:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as e:
            raise SpecError(f"Cannot read weights {weights}: {_first_line(e)}") from e
        if isinstance(state, dict):
            for key in ("state_dict", "model"):
                if isinstance(state.get(key), dict):
                    state = state[key]
                    break
        if not isinstance(state, dict):
            raise SpecError(f"Expected a state dict in {weights}, got {type(state).__name__}")
        try:
            model.load_state_dict(state)
        except RuntimeError as e:
            raise SpecError(f"Weights {weights} do not fit tv:{name}: {_first_line(e)}") from e
        info["source"] = str(weights)
    return model, info


def _from_torchscript(rest: str) -> _Resolved:
    path = Path(rest)
    if not path.is_file():
        raise SpecError(f"No TorchScript file at {rest!r} (ts:{rest})")
    try:
        with warnings.catch_warnings():
            # torch >= 2.9 marks TorchScript deprecated; loading a user's file is still fine.
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*torch\.jit")
            model = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise SpecError(f"{rest} is not a TorchScript file: {_first_line(e)}") from e
    return model, {"name": path.name, "source": str(path)}


def _from_python(rest: str, num_classes: int | None, in_channels: int | None) -> _Resolved:
    module_name, _, attr = rest.partition(":")
    if not module_name or not attr:
        raise SpecError(f"Expected py:MODULE:CALLABLE, got 'py:{rest}'")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:
        raise SpecError(f"Cannot import {module_name} (py:{rest}): {_first_line(e)}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SpecError(f"Module {module_name} has no attribute {attr!r} (py:{rest})")
        obj = getattr(obj, part)
    if not callable(obj):
        raise SpecError(f"Expected a callable at py:{rest}, got {type(obj).__name__}")
    kwargs: dict[str, Any] = {}
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        params = {}  # builtins without a signature: call with no arguments
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    for key, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if value is not None and (key in params or var_kw):
            kwargs[key] = value
    try:
        model = obj(**kwargs)
    except Exception as e:
        raise SpecError(f"py:{rest} failed: {type(e).__name__}: {_first_line(e)}") from e
    if not isinstance(model, nn.Module):
        raise SpecError(f"Expected py:{rest} to return an nn.Module, got {type(model).__name__}")
    return model, {"name": f"{module_name}:{attr}"}


def _from_name(name: str, num_classes: int | None, in_channels: int | None, seed: int) -> _Resolved:
    if num_classes is None or in_channels is None:
        raise SpecError(
            f"Expected num_classes and in_channels to build a fresh {name!r}, "
            f"got {num_classes} and {in_channels}"
        )
    try:
        model = create_model(name, num_classes=num_classes, in_channels=in_channels, seed=seed)
    except SoftlabelsError as e:
        raise SpecError(f"Cannot build {name!r}: {e}") from e
    return model, {"seed": seed}


def load_model(
    spec: str,
    *,
    num_classes: int | None = None,
    in_channels: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    with_features: bool = True,
    input_shape: tuple[int, ...] | None = None,
) -> LoadedModel:
    """Resolve ``spec`` (see the module docstring) into a :class:`LoadedModel`.

    ``num_classes``/``in_channels`` build fresh models and check loaded ones. With
    ``with_features=False`` no features or classifier are taken (logits only). With
    ``input_shape`` (one sample's shape, e.g. ``(3, 32, 32)``) a random batch checks the
    model at once; otherwise the check runs on the first real batch. Every failure to
    resolve the spec is a :class:`SpecError`.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"Expected a model spec ({_FORMS}), got {spec!r}")
    kind, _, rest = spec.partition(":")
    if kind == "tv":
        module, info = _from_torchvision(rest, num_classes)
        info["kind"] = "torchvision"
    elif kind == "ts":
        module, info = _from_torchscript(rest)
        info["kind"] = "torchscript"
    elif kind == "py":
        module, info = _from_python(rest, num_classes, in_channels)
        info["kind"] = "python"
    elif os.path.isfile(spec) or os.path.isfile(os.path.join(spec, CHECKPOINT_NAME)):
        module, info = _from_checkpoint(Path(spec), num_classes, in_channels)
        info["kind"] = "softlabels"
    elif os.path.isdir(spec):
        raise SpecError(f"Folder {spec} holds no {CHECKPOINT_NAME}: expected a model checkpoint")
    elif is_model(spec):
        module, info = _from_name(spec, num_classes, in_channels, seed)
        info["kind"] = "softlabels"
    elif "/" in spec or os.sep in spec or spec.endswith((".pt", ".pth")):
        raise SpecError(f"No model checkpoint at {spec}: expected an existing file")
    else:
        raise SpecError(
            f"Unknown model spec {spec!r}; expected {_FORMS} ({', '.join(list_models())})"
        )
    if isinstance(module, ClassifierNet):
        info.setdefault("name", module.arch_name)
    module = module.to(device)
    loaded = LoadedModel.from_module(
        module, spec=spec, num_classes=num_classes, with_features=with_features, arch=info
    )
    if input_shape is not None:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn((2, *input_shape), generator=generator).to(device)
        loaded.check(x)
    return loaded
