"""The end of a distill run: checkpoints, metrics and per-class tables, the summary, plots."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from softlabels.students._run import DistillResult, Session, StudentRun
from softlabels.students.methods import FinishContext
from softlabels.students.report import (
    plot_groups,
    plot_per_class,
    write_json,
    write_parquet,
)

__all__ = ["finish", "write_metrics"]


def write_metrics(out: Path, students: list[Any]) -> None:
    """``metrics.parquet``: one row per student and evaluated epoch."""
    rows = [
        {k: v for k, v in r.items() if not k.startswith("_")} for s in students for r in s.history
    ]
    write_parquet(out / "metrics.parquet", rows)


def _group_names(definition: str) -> tuple[str, ...]:
    return ("head", "middle", "tail") if definition == "thirds" else ("many", "medium", "few")


def _save_model(path: Path, student: Any, final: dict[str, Any]) -> None:
    from softlabels.models import save_checkpoint

    save_checkpoint(
        path,
        student.model,
        extra={
            "config": json.dumps(student.config, sort_keys=True),
            "metrics": json.dumps({k: v for k, v in final.items() if not k.startswith("_")}),
        },
    )


def _student_entry(session: Session, run: StudentRun, student: Any) -> dict[str, Any]:
    """A student's summary: status, checkpoint (saved here), final metrics, method extras."""
    spec, out = run.spec, session.out
    final = student.history[-1] if student.history else {}
    status = "ok" if student.diverged is None else "diverged"
    if status == "ok" and student.history:
        _save_model(out / spec.name / "model.pt", student, final)
    entry = {
        "name": spec.name,
        "method": spec.method,
        "model": spec.model,
        "teacher": run.shown_teacher,
        "views": run.views,
        "hparams": run.hparams,
        "status": status,
        "diverged": student.diverged,
        "epochs": student.epochs_done,
        "model_path": str(out / spec.name / "model.pt") if status == "ok" else None,
        **{k: final.get(k) for k in ("top1", *_group_names(session.definition), "ece")},
        **run.record,
    }
    if status == "ok" and run.method.finish is not None:
        entry.update(
            run.method.finish(
                FinishContext(
                    model=student.model,
                    dataset=session.ds,
                    counts=session.counts,
                    groups=session.definition,
                    seed=spec.seed,
                    options=run.hparams,
                    out_dir=out / spec.name,
                )
            )
        )
    return entry


def _per_class_rows(session: Session, name: str, per_class: list[Any]) -> list[dict[str, Any]]:
    from softlabels.metrics import shot_groups, thirds_groups

    counts = session.counts
    shot = shot_groups(counts) if session.definition == "absolute" else thirds_groups(counts)
    return [
        {
            "student": name,
            "class_id": c,
            "name": session.ds.class_names[c],
            "train_count": int(counts[c]),
            "group": str(shot[c]),
            "accuracy": acc,
        }
        for c, acc in enumerate(per_class)
    ]


def finish(
    session: Session,
    runs: list[StudentRun],
    trained: list[Any],
    t0: float,
    passes: int,
    plots: bool,
    evaluate_teachers: bool,
) -> DistillResult:
    """Write every output of the run (rank 0) and return its result."""
    out = session.out
    write_metrics(out, trained)
    by_name = {s.name: s for s in trained}
    names = _group_names(session.definition)
    students, per_class_rows = [], []
    per_class_plot: dict[str, list[float | None]] = {}
    group_plot: dict[str, dict[str, float | None]] = {}
    for run in runs:
        student = by_name[run.spec.name]
        students.append(_student_entry(session, run, student))
        final = student.history[-1] if student.history else {}
        if final.get("_per_class") is not None:
            per_class_plot[run.spec.name] = final["_per_class"]
            group_plot[run.spec.name] = {g: final.get(g) for g in names}
            per_class_rows += _per_class_rows(session, run.spec.name, final["_per_class"])
    teachers = (
        _evaluate_teachers(session, sorted({r.teacher for r in runs if r.teacher}))
        if evaluate_teachers
        else []
    )
    for t in teachers:
        if t.get("per_class") is not None:
            per_class_plot[f"teacher {t['name']}"] = t["per_class"]
            group_plot[f"teacher {t['name']}"] = {g: t.get(g) for g in names}
    write_parquet(out / "per_class.parquet", per_class_rows)
    files = {
        "metrics": str(out / "metrics.parquet"),
        "per_class": str(out / "per_class.parquet"),
        "summary": str(out / "summary.json"),
    }
    if plots and per_class_plot:
        files["plot_per_class"] = str(
            plot_per_class(out / "per_class.png", session.counts, per_class_plot)
        )
        files["plot_groups"] = str(plot_groups(out / "groups.png", group_plot, names))
    result = DistillResult(
        out=str(out),
        students=students,
        teachers=[{k: v for k, v in t.items() if k != "per_class"} for t in teachers],
        passes=passes,
        seconds=time.perf_counter() - t0,
        groups_definition=session.definition,
        files=files,
    )
    write_json(out / "summary.json", result.to_dict())
    return result


def _evaluate_teachers(session: Session, names: list[str]) -> list[dict[str, Any]]:
    """Test metrics of the teachers whose model files are still at hand (else marked so)."""
    from softlabels.errors import SoftlabelsError
    from softlabels.evaluation import model_logits
    from softlabels.metrics import evaluate_logits
    from softlabels.models import load_model

    ds, cache, dev = session.ds, session.cache, session.device
    out = []
    for name in names:
        info = cache.teacher(name).info
        spec = info.model
        calibrated = bool(info.calibration)
        entry: dict[str, Any] = {"name": name, "model": spec}
        try:
            lm = load_model(
                str(spec), num_classes=ds.num_classes, device=str(dev), with_features=calibrated
            )
            head = None
            if calibrated:  # the backbone's features through the calibrated final layer
                from softlabels.calibration import stored_classifier

                head = stored_classifier(cache, name).to(dev)
        except SoftlabelsError:
            entry["status"] = "model not available"
            out.append(entry)
            continue
        logits = model_logits(lm, ds, "test", device=dev, head=head)
        m = evaluate_logits(logits, ds.test.labels, session.counts, groups=session.definition)
        entry.update(
            {"status": "ok", "top1": m["top1"], "ece": m["ece"], "per_class": m["per_class"]}
        )
        entry.update({k: v for k, v in m["groups"].items() if k != "definition"})
        out.append(entry)
    return out
