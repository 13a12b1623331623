"""Mixed views (Mixup / CutMix): the drawing rule and the mixing of inputs (METHODS §13).

Whether view v of row i is mixed, with which partner row, with which weight and which box is
a pure function of that view's own seed ``views/seed[i, v]`` (hashed streams of it, see
:func:`draw`), of the recipe and of the dataset's size: never of the batch, the sampler, the
chunk or the rank. So a dump, a student replaying the cache and an online run draw the same
mix for the same (row, view).

The rule (``RULE``, version ``RULE_VERSION``), per (row i, view v) with seed s:

* mixed with probability ``prob`` (``u_apply(s) < prob``); when both alphas are > 0, CutMix
  with probability 1/2 (``u_kind(s) < 1/2``), else Mixup; with one alpha > 0, that one;
* partner ``j = floor(u_partner(s) * N)``, uniform over the N rows of the split (j may be
  i); ``-1`` when not mixed;
* ``lam0 = F^-1_Beta(a, a)(u_lam(s))`` (inverse CDF, float64);
* Mixup: ``x = lam x_i + (1 - lam) x_j`` with ``lam = lam0``;
* CutMix: a box of area ``1 - lam0`` (2-D images ``H x W``: side ratio ``sqrt(1 - lam0)``,
  ``h = floor(H r)``, ``w = floor(W r)``, centre ``cy = floor(u_cy H)``, ``cx = floor(u_cx W)``,
  ``y0 = clip(cy - h // 2, 0, H)``, ``y1 = clip(cy + h // 2, 0, H)``, same for x; 1-D signals
  of length L: ``l = floor(L (1 - lam0))``, an interval ``[x0, x1)`` around ``cx`` the same
  way, and ``y0 = y1 = -1``); inside the box x takes x_j, and ``lam = 1 - box area / (H W)``
  (or ``/ L``), the real share of x_i;
* not mixed: ``lam = 1``, box all ``-1`` (as Mixup views' box).

``x_j`` is the partner row's own view v, unmixed: the augmentation of row j with seed
``views/seed[j, v]`` (in an online run, the seed the epoch gives row j). Labels of a mixed
view count ``lam`` for ``y_i`` and ``1 - lam`` for ``y_j``
(:class:`softlabels.losses.MixedLabels`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from softlabels.data.augment import uniform
from softlabels.errors import UsageError
from softlabels.stores.schema import MIX_BOX_UNUSED, MIX_RULE, MIX_RULE_VERSION, MixingInfo

__all__ = ["RULE", "RULE_VERSION", "Mix", "apply_mix", "draw", "mix_views", "mixing_info"]

RULE, RULE_VERSION = MIX_RULE, MIX_RULE_VERSION  # recorded in views.mixing

# Streams of the view seed used by the mix (far from the augmentation's: never renumber).
_S_MIX = 1 << 40
_S_APPLY, _S_KIND, _S_PARTNER, _S_LAM, _S_CY, _S_CX = (_S_MIX + k for k in range(6))


def mixing_info(mixup: float, cutmix: float, prob: float) -> MixingInfo | None:
    """The recipe of ``dump --mixup A --cutmix A --mix-prob P`` (None: no mixing), checked."""
    for name, a in (("--mixup", mixup), ("--cutmix", cutmix)):
        if not (a >= 0 and np.isfinite(a)):
            raise UsageError(f"Expected {name} ALPHA >= 0 (a Beta parameter), got {a}")
    if not 0 <= prob <= 1:
        raise UsageError(f"Expected --mix-prob in [0, 1], got {prob}")
    if mixup == 0 and cutmix == 0:
        if prob > 0:
            raise UsageError(
                f"Expected --mixup or --cutmix ALPHA > 0 with --mix-prob {prob}, got both 0"
            )
        return None
    if prob == 0:
        raise UsageError(
            f"Expected --mix-prob P > 0 with --mixup {mixup:g} --cutmix {cutmix:g} (the "
            "probability that a view is mixed), got 0"
        )
    return MixingInfo(
        mixup=float(mixup),
        cutmix=float(cutmix),
        prob=float(prob),
        rule=RULE,
        rule_version=RULE_VERSION,
    )


@dataclass(frozen=True)
class Mix:
    """The mix of a batch of views: partner int32 [B] (-1: not mixed), lam float32 [B] (the
    share of the row's own input), box int32 [B, 4] ((y0, y1, x0, x1), -1: unused)."""

    partner: np.ndarray
    lam: np.ndarray
    box: np.ndarray

    @property
    def mixed(self) -> np.ndarray:
        return self.partner >= 0

    def take(self, index: Any) -> Mix:
        return Mix(self.partner[index], self.lam[index], self.box[index])


def _beta_inverse(a: float, u: np.ndarray) -> np.ndarray:
    from scipy.special import betaincinv

    return np.asarray(betaincinv(a, a, u), dtype=np.float64)


def draw(info: MixingInfo, seeds: Any, num_rows: int, spatial: Sequence[int]) -> Mix:
    """The mix of each view from its seed (uint64 [B]); ``num_rows`` the split's size N;
    ``spatial`` the input's ``(H, W)`` (images) or ``(L,)`` (signals)."""
    s = np.asarray(seeds, dtype=np.uint64).reshape(-1)
    b = len(s)
    mixed = uniform(s, _S_APPLY) < info.prob
    if info.mixup > 0 and info.cutmix > 0:
        cut = uniform(s, _S_KIND) < 0.5
    else:
        cut = np.full(b, info.cutmix > 0)
    partner = np.minimum(np.floor(uniform(s, _S_PARTNER) * num_rows), num_rows - 1).astype(np.int64)
    u_lam = uniform(s, _S_LAM)
    lam = np.ones(b, np.float64)
    if info.mixup > 0:
        lam = np.where(~cut, _beta_inverse(info.mixup, u_lam), lam)
    box = np.full((b, 4), MIX_BOX_UNUSED, np.int64)
    if info.cutmix > 0 and cut.any():
        lam0 = _beta_inverse(info.cutmix, u_lam)
        if len(spatial) == 2:
            h, w = int(spatial[0]), int(spatial[1])
            r = np.sqrt(1.0 - lam0)
            ch, cw = np.floor(h * r).astype(np.int64), np.floor(w * r).astype(np.int64)
            cy = np.minimum(np.floor(uniform(s, _S_CY) * h), h - 1).astype(np.int64)
            cx = np.minimum(np.floor(uniform(s, _S_CX) * w), w - 1).astype(np.int64)
            y0, y1 = np.clip(cy - ch // 2, 0, h), np.clip(cy + ch // 2, 0, h)
            x0, x1 = np.clip(cx - cw // 2, 0, w), np.clip(cx + cw // 2, 0, w)
            cut_box = np.stack([y0, y1, x0, x1], axis=1)
            area = (y1 - y0) * (x1 - x0) / float(h * w)
        elif len(spatial) == 1:
            length = int(spatial[0])
            cl = np.floor(length * (1.0 - lam0)).astype(np.int64)
            cx = np.minimum(np.floor(uniform(s, _S_CX) * length), length - 1).astype(np.int64)
            x0, x1 = np.clip(cx - cl // 2, 0, length), np.clip(cx + cl // 2, 0, length)
            unused = np.full(b, MIX_BOX_UNUSED, np.int64)
            cut_box = np.stack([unused, unused, x0, x1], axis=1)
            area = (x1 - x0) / float(length)
        else:
            raise UsageError(
                f"Expected inputs [C, H, W] or [C, L] for CutMix, got spatial shape {tuple(spatial)}"
            )
        lam = np.where(cut, 1.0 - area, lam)
        box = np.where(cut[:, None], cut_box, box)
    lam = np.where(mixed, lam, 1.0)
    box = np.where(mixed[:, None], box, MIX_BOX_UNUSED)
    return Mix(
        partner=np.where(mixed, partner, -1).astype(np.int32),
        lam=lam.astype(np.float32),
        box=box.astype(np.int32),
    )


def apply_mix(x: torch.Tensor, partner_x: torch.Tensor, mix: Mix) -> torch.Tensor:
    """The mixed inputs: ``x`` [B, ...] with the partners' inputs ``partner_x`` (rows of the
    mixed views only, in order), by each view's lam (Mixup) or box (CutMix)."""
    mixed = np.flatnonzero(mix.mixed)
    if len(mixed) == 0:
        return x
    out = x.clone()
    idx = torch.as_tensor(mixed, device=x.device)
    own, other = x[idx], partner_x.to(x.device, x.dtype)
    box = mix.box[mixed]
    cut = box[:, 2] >= 0
    lam = torch.as_tensor(mix.lam[mixed], device=x.device, dtype=x.dtype)
    shape = (-1,) + (1,) * (x.ndim - 1)
    blended = lam.view(shape) * own + (1 - lam.view(shape)) * other
    if cut.any():
        spatial = x.shape[2:]
        inside = np.zeros((len(mixed), *spatial), dtype=bool)
        for k in np.flatnonzero(cut):
            y0, y1, x0, x1 = (int(v) for v in box[k])
            if len(spatial) == 2:
                inside[k, y0:y1, x0:x1] = True
            else:
                inside[k, x0:x1] = True
        mask = torch.from_numpy(inside).to(x.device)[:, None]
        pasted = torch.where(mask, other, own)
        is_cut = torch.from_numpy(cut).to(x.device).view(shape)
        blended = torch.where(is_cut, pasted, blended)
    out[idx] = blended
    return out


def mix_views(
    x: torch.Tensor, mix: Mix | None, partner_views: Callable[[np.ndarray], torch.Tensor]
) -> torch.Tensor:
    """The views ``x`` [B, ...] mixed by ``mix``; ``partner_views(rows)`` gives the partner
    rows' own unmixed views (the same view index), for the mixed views' partners in order."""
    if mix is None or not mix.mixed.any():
        return x
    partners = mix.partner[mix.mixed].astype(np.int64)
    return apply_mix(x, partner_views(partners), mix)
