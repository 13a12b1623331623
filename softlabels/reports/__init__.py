"""Reports over many distill runs: one table of mean ± sd over runs, as text or figures.

``report(run_dirs, by="student"|"method")`` reads each run folder's ``summary.json`` and
returns a :class:`Report`: one :class:`Row` per student name (or method) and per teacher,
each metric a :class:`Stat` (mean, sd with ddof=1, n). Students that did not finish (a
diverged loss) and teachers whose model was not at hand are counted, not averaged.
``aggregate`` does the same for runs already read (``RunSummary.from_dict``);
``plot_report`` draws the figures.
"""

from softlabels.reports._aggregate import BY, Report, Row, Stat, aggregate, report
from softlabels.reports._plots import PLOT_FILES, ClassAccuracy, class_accuracy, plot_report
from softlabels.reports._runs import Entry, RunSummary, group_names, load_run

__all__ = [
    "BY",
    "PLOT_FILES",
    "ClassAccuracy",
    "Entry",
    "Report",
    "Row",
    "RunSummary",
    "Stat",
    "aggregate",
    "class_accuracy",
    "group_names",
    "load_run",
    "plot_report",
    "report",
]
