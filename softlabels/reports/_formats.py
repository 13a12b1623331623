"""A report as text files: CSV (fractions, one column per statistic) and Markdown (in %)."""

from __future__ import annotations

import csv
import io
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from softlabels.reports._aggregate import Report

__all__ = ["report_csv", "report_markdown"]

HEADERS = {"top1": "top-1", "ece": "ECE"}


def report_csv(report: Report) -> str:
    """One line per row; ``<metric>_mean``, ``<metric>_sd``, ``<metric>_n`` per metric (fractions,
    empty where there is no value); lists joined with ``;``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    lead = ("kind", "name", "label", "methods", "teachers", "runs", "total", "ok")
    stats = ("mean", "sd", "n")
    writer.writerow([*lead, *(f"{k}_{s}" for k in report.metric_keys for s in stats)])
    for row in report.rows:
        d = row.to_dict()
        cells = [";".join(v) if isinstance(v, list) else v for v in (d[k] for k in lead)]
        for k in report.metric_keys:
            cells += ["" if d[k][s] is None else repr(d[k][s]) for s in stats]
        writer.writerow(cells)
    return buf.getvalue()


def report_markdown(report: Report) -> str:
    """A Markdown table: mean ± sd over runs in % (2 decimals), ``ok`` as used/total."""
    heads = ["row", "method", "ok", *(HEADERS.get(k, k) for k in report.metric_keys)]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for row in report.rows:
        cells = [
            _escape(row.label),
            _escape(",".join(row.methods) or "-"),
            f"{row.ok}/{row.total}",
            *(row.metrics[k].format() for k in report.metric_keys),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
