"""`tasksafe run` and `tasksafe report`."""

from __future__ import annotations

import click


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--results", default=None, help="Results directory (default: results/<spec name>).")
@click.option("--dry-run", is_flag=True, help="List the cells with an estimated time; run nothing.")
@click.option("--only", "only", multiple=True, metavar="KEY=V1,V2",
              help="Run part of the grid: keep cells whose KEY (kind, model, task, strategy, mitigation, "
                   "budget, seed) is one of the values. Repeatable; e.g. --only strategy=benign,aoa --only seed=0.")
def run(spec: str, results: str | None, dry_run: bool, only: tuple[str, ...]) -> None:
    """Run the experiment grid in SPEC (YAML): for each cell build -> protect -> finetune ->
    evaluate, reusing what earlier cells produced. Finished cells are stored and skipped when
    rerun, so a killed run continues where it stopped; --only runs a big grid in parts."""
    from tasksafe.experiments import load_spec, run_spec
    from tasksafe.experiments.spec import parse_only

    loaded = load_spec(spec)
    run_spec(loaded, results or f"results/{loaded.name}", dry_run=dry_run, echo=click.echo,
             only=parse_only(list(only)))


@click.command()
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Report directory.")
def report(results_dir: str, out_dir: str) -> None:
    """Write report.md and a self-contained report.html with tables and plots from the
    results store in RESULTS_DIR (nothing is retrained or regenerated)."""
    from pathlib import Path

    from tasksafe.data.io import check_output_dir
    from tasksafe.report import build_report

    check_output_dir(out_dir)
    path = build_report(results_dir, out_dir)
    click.echo(f"report: {path} and {Path(out_dir) / 'report.html'}")
