"""Reports: Markdown and HTML with tables and plots, from the results store."""

from tasksafe.report.document import build_report
from tasksafe.report.tables import attack_table, efficiency_curves, markdown_table, mitigation_table, percent

__all__ = ["attack_table", "build_report", "efficiency_curves", "markdown_table", "mitigation_table", "percent"]
