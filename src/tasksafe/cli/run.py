"""`tasksafe run`: an experiment grid."""

from __future__ import annotations

import click


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--results", default=None, help="Results directory (default: results/<spec name>).")
@click.option("--dry-run", is_flag=True, help="Check the spec, list the cells with an estimated time; run and "
                                              "write nothing.")
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
