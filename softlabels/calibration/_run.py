"""``softlabels calibrate``: SSD stage II on a cache's features, stored as a new teacher.

The source teacher's cached features (every view of every row) and cached classifier are
all it needs: no backbone pass. The result is the teacher ``<source>+<method>`` with its own
logits ``[N, V, C]`` (in the source's dtype), its classifier as static arrays and its own
manifest records, readable like any other teacher. It keeps the source's storage: the
calibrated logits of a sparse source are stored top-k with the same K (their error measured
against the calibrated float32 logits, as a dump measures it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from softlabels.calibration._methods import (
    LWS_REFERENCE,
    METHODS,
    Classifier,
    Fit,
    fit_crt,
    fit_lws,
    tau_norm,
)
from softlabels.errors import (
    ChecksumMismatchError,
    SoftlabelsError,
    SpecError,
    UsageError,
)
from softlabels.nonfinite import nonfinite_error, nonfinite_rows
from softlabels.stores.schema import (
    CLASSIFIER_BIAS,
    CLASSIFIER_WEIGHT,
    FEATURES,
    LOGITS,
    LWS_SCALE,
    TOPK_VALUES,
    Calibration,
    TeacherInfo,
)

__all__ = ["CalibrationResult", "calibrate", "calibrated_name"]

Progress = Callable[[int, int], None]

# Rows per batch when applying a classifier to stored features (memory bound, not speed).
_APPLY_ROWS = 4096


@dataclass
class CalibrationResult:
    """What ``calibrate`` did; ``to_dict()`` is the ``--json`` output."""

    url: str
    source: str
    teacher: str  # the new teacher, ``<source>+<method>``
    method: str
    classifier_kind: str
    num_samples: int
    num_views: int
    num_classes: int
    feature_dim: int
    epochs: int | None  # None for tau-norm (no training)
    lr: float | None
    batch_size: int | None
    weight_decay: float | None
    seed: int | None
    tau_norm_power: float | None
    device: str
    steps: int
    losses: list[float]
    # {"split": "train" | "test", "dataset": spec | None, "before": {...}, "after": {...}}
    evaluation: dict[str, Any]
    replaced: bool
    seconds: float
    lws_scale: dict[str, float] | None = None  # min / mean / max of the learned scale
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibrated_name(source: str, method: str) -> str:
    """The name of the teacher a calibration stores: ``<source>+<method>``."""
    return f"{source}+{method}"


def calibrate(
    cache_url: str,
    teacher: str,
    method: str,
    *,
    epochs: int = 10,
    lr: float | None = None,
    batch_size: int = 512,
    seed: int = 0,
    device: str = "cpu",
    tau_norm_power: float = 1.0,
    keep_bias: bool = False,
    weight_decay: float = 5e-4,
    overwrite: bool = False,
    dataset: str | None = None,
    progress: Progress | None = None,
) -> CalibrationResult:
    """Calibrate ``teacher`` of the cache at ``cache_url`` and store it as ``teacher+method``.

    ``method``: ``lws`` (a per-class scale on the frozen classifier), ``crt`` (a re-initialised
    classifier of the same kind) — both trained for ``epochs`` with CE under class-balanced
    sampling over every (row, view) of the cached features, SGD momentum 0.9, cosine
    schedule, seeded (``lr`` None: the reference's, 0.2 for LWS, 0.1 for cRT) — or
    ``tau-norm`` (``W_c / ||W_c||^tau_norm_power``, the bias dropped as the reference code
    does unless ``keep_bias``, no training). The calibration record says where the
    settings differ from the reference code's. With ``dataset`` (the cache's dataset spec) the source model is loaded once
    to compute test-split features, and accuracies before/after are those of the test
    split; otherwise they are those of the cached training features (the "balanced" figure
    is the mean per-class accuracy). Every check runs before any training; nothing is
    written unless everything succeeded.
    """
    from softlabels.device import resolve_device
    from softlabels.stores.reader import Cache
    from softlabels.stores.writer import add_teacher

    t0 = time.perf_counter()
    if method not in METHODS:
        raise UsageError(f"Expected --method lws, crt or tau-norm, got {method!r}")
    training = method != "tau-norm"
    if lr is None:
        lr = LWS_REFERENCE["lr"] if method == "lws" else 0.1
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise UsageError(f"Expected --epochs >= 1, got {epochs!r}")
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise UsageError(f"Expected --batch-size >= 1, got {batch_size!r}")
    if not isinstance(lr, int | float) or not math.isfinite(lr) or lr <= 0:
        raise UsageError(f"Expected a finite --lr > 0, got {lr!r}")
    if not math.isfinite(weight_decay) or weight_decay < 0:
        raise UsageError(f"Expected a finite --weight-decay >= 0, got {weight_decay!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise UsageError(f"Expected --seed >= 0, got {seed!r}")
    if not math.isfinite(tau_norm_power) or tau_norm_power < 0:
        raise UsageError(f"Expected a finite --tau-norm-power >= 0, got {tau_norm_power!r}")
    dev = resolve_device(device)

    cache = Cache(cache_url)
    src = cache.teacher(teacher)
    info = src.info
    name = calibrated_name(teacher, method)
    _check_source(cache, teacher, info)
    kind = str(info.classifier_kind or "linear")
    if method == "tau-norm" and kind == "cosine":
        raise UsageError(
            f"teacher {teacher!r} has a cosine classifier, which normalises its weights "
            "already: tau-norm would change nothing; use --method lws or crt"
        )
    if name in cache.teacher_names and not overwrite:
        raise UsageError(
            f"{cache.url} already has a teacher {name!r}; use --overwrite to replace it"
        )
    cache.require_complete(teacher)
    source_cls = _source_classifier(src)

    # Optional test-split evaluation: resolve everything (dataset, model) before training.
    test: tuple[torch.Tensor, np.ndarray] | None = None
    if dataset is not None:
        test = _test_features(cache, teacher, info, source_cls, dataset, dev, batch_size)

    # Cached features and labels, read once with every chunk's checksum verified.
    feats_np = src.reader(FEATURES).read_all()
    labels_np = cache.labels
    n, v, d = feats_np.shape
    if d != source_cls.feature_dim:
        raise ChecksumMismatchError(
            f"{cache.url}: teacher {teacher!r} has features of dimension {d} but a classifier "
            f"for {source_cls.feature_dim}; the cache is damaged, dump it again"
        )
    features = torch.from_numpy(feats_np).to(dev)
    labels = torch.from_numpy(labels_np)
    c = cache.num_classes

    fit: Fit
    if method == "lws":
        fit = fit_lws(
            features, labels, source_cls.to(dev), epochs=epochs, lr=lr, batch_size=batch_size,
            seed=seed, weight_decay=weight_decay, progress=progress,
        )  # fmt: skip
    elif method == "crt":
        fit = fit_crt(
            features, labels, c, kind=kind, cosine_scale=source_cls.cosine_scale, epochs=epochs,
            lr=lr, batch_size=batch_size, seed=seed, weight_decay=weight_decay,
            progress=progress,
        )  # fmt: skip
    else:
        fit = Fit(classifier=tau_norm(source_cls, tau_norm_power, keep_bias=keep_bias))
    calibrated = fit.classifier.to(dev)

    # Logits of every (row, view) under the calibrated classifier, and accuracies.
    dtype = src.reader(TOPK_VALUES if info.sparse else LOGITS).dtype
    # A sparse teacher's error is measured against float32 logits: cast when encoding.
    logits, after_pred = _apply(
        calibrated, features, np.dtype(np.float32) if info.sparse else dtype
    )
    _, before_pred = _apply(source_cls.to(dev), features, None)
    counts = np.asarray(cache.dataset.train_counts or cache.class_counts)
    if test is None:
        flat_labels = np.repeat(labels_np, v)  # sample i * V + v carries row i's label
        evaluation = {
            "split": "train",
            "dataset": None,
            "before": _summary(*before_pred, flat_labels, counts, c),
            "after": _summary(*after_pred, flat_labels, counts, c),
        }
    else:
        test_feats, test_labels = test
        _, tb = _apply(source_cls.to(dev), test_feats, None)
        _, ta = _apply(calibrated, test_feats, None)
        evaluation = {
            "split": "test",
            "dataset": dataset,
            "before": _summary(*tb, test_labels, counts, c),
            "after": _summary(*ta, test_labels, counts, c),
        }
    assert logits is not None
    if info.sparse:
        with np.errstate(over="ignore"):
            _check_finite(logits.astype(dtype), name, dtype)
    else:
        _check_finite(logits, name, dtype)

    out_cls = fit.classifier.to("cpu")
    static = {
        CLASSIFIER_WEIGHT: out_cls.weight.float().numpy(),
        CLASSIFIER_BIAS: out_cls.bias.float().numpy(),
    }
    scale_stats = None
    if out_cls.lws_scale is not None:
        s = out_cls.lws_scale.float().numpy()
        static[LWS_SCALE] = s
        scale_stats = {"min": float(s.min()), "mean": float(s.mean()), "max": float(s.max())}
    import softlabels

    calibration = Calibration(
        method=method,
        source=teacher,
        epochs=epochs if training else None,
        lr=float(lr) if training else None,
        batch_size=batch_size if training else None,
        weight_decay=float(weight_decay) if training else None,
        momentum=0.9 if training else None,
        schedule="cosine" if training else None,
        sampler="class-balanced" if training else None,
        seed=seed if training else None,
        tau_norm_power=float(tau_norm_power) if method == "tau-norm" else None,
        samples=int(n * v),
        formula=fit.classifier.formula(),
        losses=fit.losses,
        evaluation=evaluation,
        softlabels=softlabels.__version__,
        keep_bias=bool(keep_bias) if method == "tau-norm" else None,
        differs_from_reference=_differences(method, fit, keep_bias),
    )
    new_info = info.updated(
        order=len([t for t in cache.teacher_names if t != name]),
        dtype=str(dtype),
        feature_dim=d,
        classifier_kind=kind,
        cosine_scale=source_cls.cosine_scale,
        calibration=calibration,
    )
    rows: dict[str, np.ndarray] = {LOGITS: logits}
    per_chunk: dict[str, np.ndarray] = {}
    if info.sparse:  # the source's storage, the same K, under the current rule
        from softlabels.stores.topk import encode_chunks, topk_info

        k = src.k
        assert k is not None
        new_info = new_info.updated(topk=topk_info(k, c))
        mix = cache.mix_labels() if cache.mixing is not None else None
        rows, per_chunk, profile = encode_chunks(
            logits, dtype, k, cache.chunk_size, cache.labels, mix
        )
        static |= profile
    replaced = name in cache.teacher_names
    add_teacher(
        cache_url,
        name,
        new_info,
        rows,
        static,
        per_chunk=per_chunk,
        replace=overwrite,
        compressor=cache.metadata.compressor,
    )
    return CalibrationResult(
        url=cache.url,
        source=teacher,
        teacher=name,
        method=method,
        classifier_kind=kind,
        num_samples=n,
        num_views=v,
        num_classes=c,
        feature_dim=d,
        epochs=calibration.epochs,
        lr=calibration.lr,
        batch_size=calibration.batch_size,
        weight_decay=calibration.weight_decay,
        seed=calibration.seed,
        tau_norm_power=calibration.tau_norm_power,
        device=str(dev),
        steps=fit.steps,
        losses=fit.losses,
        evaluation=evaluation,
        replaced=replaced,
        seconds=time.perf_counter() - t0,
        lws_scale=scale_stats,
        extra={"formula": calibration.formula, "dtype": str(dtype), "storage": src.storage}
        | ({"k": src.k} if info.sparse else {}),
    )


# --------------------------------------------------------------------------- helpers


def _differences(method: str, fit: Fit, keep_bias: bool) -> list[str]:
    """Where a calibration's settings differ from the reference code's (METHODS §8)."""
    if method == "lws":
        return list(fit.settings.get("differs_from_reference", []))
    if method == "tau-norm":
        return ["bias kept (reference: dropped)"] if keep_bias else []
    return []


def _check_source(cache: Any, teacher: str, info: TeacherInfo) -> None:
    cal = info.calibration
    if cal is not None:
        raise UsageError(
            f"teacher {teacher!r} is already calibrated ({cal.method} of "
            f"{cal.source!r}) and has no features; calibrate {cal.source!r} instead"
        )
    if not info.features:
        raise UsageError(
            f"teacher {teacher!r} of {cache.url} has no cached features; calibration needs "
            "them: dump it again without --no-features"
        )
    if not info.classifier:
        raise UsageError(
            f"teacher {teacher!r} of {cache.url} has no cached classifier (its model has no "
            "final linear layer softlabels could read); calibration needs its weights"
        )
    if str(cache.dataset.split or "train") != "train":
        raise UsageError(
            f"{cache.url} holds the {cache.dataset.split} split; calibrate on a cache of "
            "the train split (dump --split train)"
        )


def stored_classifier(cache: Any, teacher: str) -> Classifier:
    """The final layer stored with a teacher (checksums checked), calibrated ones included:
    ``lws_scale * head(v)`` for an LWS teacher, the re-trained or normalised layer else."""
    src = cache.teacher(teacher)
    cls = _source_classifier(src)
    scale = src.lws_scale
    if scale is not None:
        cls = Classifier(
            cls.weight,
            cls.bias,
            kind=cls.kind,
            cosine_scale=cls.cosine_scale,
            lws_scale=torch.from_numpy(np.asarray(scale, dtype=np.float32)),
        )
    return cls


def _source_classifier(src: Any) -> Classifier:
    """The cached classifier of a teacher (its files checked against the manifest)."""
    pair = src.classifier
    if pair is None:
        raise UsageError(f"teacher {src.name!r} of {src.cache.url} has no cached classifier")
    weight, bias = (torch.from_numpy(np.asarray(a, dtype=np.float32)) for a in pair)
    info = src.info
    kind = str(info.classifier_kind or "linear")
    scale = info.cosine_scale
    return Classifier(
        weight, bias, kind=kind, cosine_scale=float(scale) if scale is not None else None
    )


def _apply(
    classifier: Classifier, features: torch.Tensor, dtype: np.dtype[Any] | None
) -> tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray]]:
    """Logits ``[N, (V,) C]`` as ``dtype`` (None: not kept), predictions and confidences."""
    rows = features.shape[0]
    out = None if dtype is None else np.empty((*features.shape[:-1], classifier.num_classes), dtype)
    preds, confs = [], []
    with torch.inference_mode():
        for start in range(0, rows, _APPLY_ROWS):
            z = classifier(features[start : start + _APPLY_ROWS])
            p = torch.softmax(z, dim=-1)
            conf, pred = p.max(dim=-1)
            # Sync point: one copy per block of rows.
            if out is not None:
                with np.errstate(over="ignore"):
                    out[start : start + _APPLY_ROWS] = z.cpu().numpy().astype(dtype)
            preds.append(pred.reshape(-1).cpu())
            confs.append(conf.reshape(-1).cpu())
    return out, (torch.cat(preds).numpy(), torch.cat(confs).double().numpy())


def _summary(
    pred: np.ndarray, conf: np.ndarray, labels: np.ndarray, counts: np.ndarray, c: int
) -> dict[str, Any]:
    from softlabels.metrics import (
        expected_calibration_error,
        group_accuracies,
        per_class_accuracy,
    )

    per_class = per_class_accuracy(pred, labels, c)
    correct = pred == labels
    present = per_class[~np.isnan(per_class)]
    return {
        "top1": float(correct.mean()) if len(labels) else 0.0,
        "balanced": float(present.mean()) if len(present) else 0.0,
        "groups": group_accuracies(per_class, counts),
        "ece": expected_calibration_error(conf, correct),
        "num_samples": len(labels),
    }


def _check_finite(logits: np.ndarray, name: str, dtype: np.dtype[Any]) -> None:
    rows = nonfinite_rows(logits)
    if len(rows):
        hint = "they overflow float16; " if np.dtype(dtype) == np.float16 else ""
        raise nonfinite_error(
            f"calibrated teacher {name!r} has NaN/Inf logits", rows, f"{hint}nothing was written"
        )


def _test_features(
    cache: Any,
    teacher: str,
    info: TeacherInfo,
    source_cls: Classifier,
    dataset: str,
    dev: torch.device,
    batch_size: int,
) -> tuple[torch.Tensor, np.ndarray]:
    """Features of the test split from one pass of the source model (clean inputs)."""
    from softlabels.caches import check_dataset
    from softlabels.data import load_dataset
    from softlabels.models import load_model
    from softlabels.teachers.dump import model_identity

    ds = load_dataset(dataset)
    check_dataset(cache, ds, "train")
    spec = str(info.model)
    part = ds.split("test")
    try:
        lm = load_model(
            spec,
            num_classes=ds.num_classes,
            in_channels=int(ds.input_shape[0]),
            device=str(dev),
            with_features=True,
        )
    except SoftlabelsError as exc:
        raise SpecError(
            f"cannot load the model of teacher {teacher!r} to evaluate on the test split "
            f"({exc}); drop --dataset to report training accuracy"
        ) from None
    try:
        recorded = info.model_id
        if recorded is not None and model_identity(spec) != recorded:
            raise UsageError(
                f"the model of teacher {teacher!r} ({spec}) changed since the dump, so its test "
                "features would not match the cache; drop --dataset to report training accuracy"
            )
        pair = lm.classifier()
        if pair is None or not (
            torch.allclose(pair[0].float().cpu(), source_cls.weight, atol=1e-6)
            and torch.allclose(pair[1].float().cpu(), source_cls.bias, atol=1e-6)
        ):
            raise UsageError(
                f"the model of teacher {teacher!r} ({spec}) no longer has the cached "
                "classifier; drop --dataset to report training accuracy"
            )
        feats = []
        with torch.inference_mode():
            for start in range(0, len(part), batch_size):
                rows = np.arange(start, min(len(part), start + batch_size))
                _, f = lm.forward(ds.clean(part.load(rows).to(dev)))
                if f is None:
                    raise UsageError(
                        f"the model of teacher {teacher!r} ({spec}) gives no features; "
                        "drop --dataset to report training accuracy"
                    )
                feats.append(f.float())
    finally:
        lm.close()
    d = source_cls.feature_dim
    test_feats = torch.cat(feats) if feats else torch.zeros((0, d), device=dev)
    return test_feats, part.labels
