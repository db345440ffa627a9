"""Reports: Markdown and HTML with tables and plots, from the results store."""

from tasksafe.report.build import attack_table, build_report, mitigation_table

__all__ = ["attack_table", "build_report", "mitigation_table"]
