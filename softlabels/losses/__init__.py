"""Loss functions of every method, one module per method, and the registry the engine uses.

Each public function takes keyword arguments named as in METHODS.md (``student_logits``,
``teacher_logits``, ``labels``, ``class_counts``, ``tau``, ``power``, ``alpha``, ``beta``
...), validates its hyper-parameters and returns a scalar tensor.
"""

from softlabels.losses._checks import ClassCounts
from softlabels.losses._labels import Labels, MixedLabels, hard_ce, per_label, primary_labels
from softlabels.losses._registry import LossInfo, get_loss, is_loss, list_losses, register_loss
from softlabels.losses.baselines import bsce, ce, effective_number_weights, ldam
from softlabels.losses.bkd import bkd, bkd_target_log
from softlabels.losses.cbd import cbd, cbd_target
from softlabels.losses.dive import dive, dive_target_log
from softlabels.losses.dkd import dkd, dkd_parts
from softlabels.losses.ecl import ecl, ecl_weights, standardised_ce
from softlabels.losses.kd import kd
from softlabels.losses.ssd import ssd

__all__ = [
    "ClassCounts",
    "Labels",
    "LossInfo",
    "MixedLabels",
    "bkd",
    "bkd_target_log",
    "bsce",
    "cbd",
    "cbd_target",
    "ce",
    "dive",
    "dive_target_log",
    "dkd",
    "dkd_parts",
    "ecl",
    "ecl_weights",
    "effective_number_weights",
    "get_loss",
    "hard_ce",
    "is_loss",
    "kd",
    "ldam",
    "list_losses",
    "per_label",
    "primary_labels",
    "register_loss",
    "ssd",
    "standardised_ce",
]
