"""A plain MLP for any input: flatten -> (linear -> ReLU) x num_layers -> fc.

``in_channels`` is ignored; the flattened input size is ``in_features``. Pass it when you
know it. Left out, the first layer is built on the first forward call from the input's
size (seeded from ``create_model``'s ``seed`` when one was given), so build the
optimizer after one forward pass; ``arch_config()`` records ``in_features`` from then on.
"""

from __future__ import annotations

import torch
from torch import nn

from softlabels.errors import UsageError
from softlabels.models._base import ClassifierNet, ModelArgs
from softlabels.models._registry import register_model

__all__ = ["MLP", "mlp"]


def _check_positive(name: str, key: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"Expected an integer {key} >= 1 for {name}, got {value!r}")


class MLP(ClassifierNet):
    """Flatten, ``num_layers`` hidden layers of width ``hidden`` with ReLU; feature = last."""

    __jit_unused_properties__ = ["is_materialized"]  # noqa: RUF012 - read by torch.jit
    uses_in_channels = False  # the flattened size is what counts

    def __init__(
        self,
        name: str,
        args: ModelArgs,
        *,
        in_features: int | None = None,
        hidden: int = 256,
        num_layers: int = 2,
        seed: int | None = None,
    ) -> None:
        if in_features is not None:
            _check_positive(name, "in_features", in_features)
        _check_positive(name, "hidden", hidden)
        _check_positive(name, "num_layers", num_layers)
        super().__init__(
            name,
            args,
            feature_dim=hidden,
            in_features=in_features,
            hidden=hidden,
            num_layers=num_layers,
        )
        self.in_features = in_features
        self._seed = seed
        first: nn.Module = nn.Linear(in_features, hidden) if in_features else nn.Identity()
        layers: list[nn.Module] = [first, nn.ReLU(inplace=True)]
        for _ in range(num_layers - 1):
            layers += [nn.Linear(hidden, hidden), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self._add_heads()

    @property
    def is_materialized(self) -> bool:
        """Whether the first layer exists (``in_features`` known)."""
        return self.in_features is not None

    @torch.jit.unused
    def _materialize(self, x: torch.Tensor) -> None:
        in_features = int(x.shape[1])
        hidden = int(self._extra["hidden"])
        if self._seed is None:
            layer = nn.Linear(in_features, hidden)
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self._seed)
                layer = nn.Linear(in_features, hidden)
        self.body[0] = layer.to(device=self.fc.weight.device, dtype=self.fc.weight.dtype)
        self.in_features = in_features
        self._extra["in_features"] = in_features

    @torch.jit.export
    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(x, 1)
        if self.in_features is None:
            self._materialize(x)
        return self.body(x)


@register_model
def mlp(
    args: ModelArgs,
    *,
    in_features: int | None = None,
    hidden: int = 256,
    num_layers: int = 2,
    seed: int | None = None,
) -> MLP:
    """MLP on flattened inputs; ``in_features`` is inferred on first use when left out."""
    return MLP(
        "mlp", args, in_features=in_features, hidden=hidden, num_layers=num_layers, seed=seed
    )
