"""`tasksafe report`: tables and plots from a results store."""

from __future__ import annotations

import click


@click.command()
@click.argument("results_dir", type=click.Path())
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Report directory.")
def report(results_dir: str, out_dir: str) -> None:
    """Write report.md and a self-contained report.html with tables and plots from the
    results store in RESULTS_DIR, or from an exported results file (`tasksafe results
    export`), and print a summary (one short row per fine-tuned cell, also written to
    summary.txt). Nothing is retrained or regenerated, and the store is not changed."""
    from pathlib import Path

    from tasksafe.data.io import check_output_dir
    from tasksafe.errors import require
    from tasksafe.report import build_report

    require("matplotlib", "report")  # its plots: without the report extra, one line naming it
    check_output_dir(out_dir)
    path = build_report(results_dir, out_dir)
    click.echo((Path(out_dir) / "summary.txt").read_text(encoding="utf-8"))
    click.echo(f"report: {path} and {Path(out_dir) / 'report.html'}")
