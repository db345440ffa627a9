"""`tasksafe results`: export a results store to a committed file, merge files into a store."""

from __future__ import annotations

import click


@click.group()
def results() -> None:
    """Results that outlive the machine: export a store's finished cells to a compact JSONL
    file to commit, and merge such files into a store on another machine to continue a grid
    there. `tasksafe report FILE.jsonl` builds the report from the file alone."""


@results.command("export")
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The JSONL file to write.")
def export(results_dir: str, output: str) -> None:
    """Write every finished cell of RESULTS_DIR (configuration, measurements, versions; no
    adapters or generations) to OUTPUT, one cell per line, sorted by cell id."""
    from tasksafe.experiments.transfer import export_results

    click.echo(f"exported {export_results(results_dir, output)} finished cells to {output}")


@results.command("merge")
@click.argument("sources", nargs=-1, required=True, type=click.Path())
@click.option("--into", "results_dir", required=True, type=click.Path(file_okay=False), help="The store to add to.")
@click.option("--allow-mismatch", is_flag=True, help="Merge cells of another tasksafe version or model build too.")
def merge(sources: tuple[str, ...], results_dir: str, allow_mismatch: bool) -> None:
    """Add the cells of SOURCES (exported files or results folders) to the store in --into;
    cells it has are skipped, so `tasksafe run` there continues with the rest of the grid.
    Cells of another tasksafe version or another build of a model (the organism) are refused
    unless --allow-mismatch."""
    from tasksafe.experiments.transfer import merge_results

    report = merge_results(sources, results_dir, allow_mismatch)
    click.echo(f"added {len(report.added)} cells to {results_dir}; {len(report.already_there)} were there already")
