"""SSD stage II (METHODS.md §8): calibrate a cached teacher on its cached features.

>>> from softlabels.calibration import calibrate
>>> result = calibrate("runs/c.slc", "bsce", "lws", epochs=10)   # doctest: +SKIP
>>> result.teacher                                                # "bsce+lws"  # doctest: +SKIP

The pure functions work on tensors and know nothing of caches:

>>> cls = Classifier(weight, bias)                                # doctest: +SKIP
>>> fit = fit_lws(features, labels, cls, epochs=10, seed=0)       # fit.classifier.lws_scale
>>> fit = fit_crt(features, labels, num_classes, kind="linear")  # doctest: +SKIP
>>> normed = tau_norm(cls, power=1.0)                             # doctest: +SKIP
"""

from softlabels.calibration._methods import (
    KINDS,
    LWS_REFERENCE,
    METHODS,
    Classifier,
    Fit,
    fit_crt,
    fit_lws,
    flatten_views,
    lws_differences,
    tau_norm,
)
from softlabels.calibration._run import (
    CalibrationResult,
    calibrate,
    calibrated_name,
    stored_classifier,
)

__all__ = [
    "KINDS",
    "LWS_REFERENCE",
    "METHODS",
    "CalibrationResult",
    "Classifier",
    "Fit",
    "calibrate",
    "calibrated_name",
    "fit_crt",
    "fit_lws",
    "flatten_views",
    "lws_differences",
    "stored_classifier",
    "tau_norm",
]
