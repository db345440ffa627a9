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
@click.option("--executor", default="local", show_default=True, type=click.Choice(["local", "ray"]),
              help="Where cells run: in this process one at a time, or as Ray tasks with the resources the "
                   "spec's `resources:` asks for (pip install 'tasksafe[ray]'; docs/scaling.md).")
@click.option("--address", default=None, metavar="ADDR",
              help="With --executor ray: the cluster to join (e.g. auto, or HOST:6379 of `ray start --head`); "
                   "without it a local Ray instance is started on this machine.")
@click.option("--log", "log_cell", default=None, metavar="CELL",
              help="Print the log of the cell whose id starts with CELL (see the failure lines) and exit.")
def run(spec: str, results: str | None, dry_run: bool, only: tuple[str, ...], executor: str, address: str | None,
        log_cell: str | None) -> None:
    """Run the experiment grid in SPEC (YAML): for each cell build -> protect -> finetune ->
    evaluate, reusing what earlier cells produced. Finished cells are stored and skipped when
    rerun, so a killed run continues where it stopped; --only runs a big grid in parts. A cell
    that fails is recorded with its error and log, the others go on, and the next run retries
    it; the command then exits 2."""
    from tasksafe.experiments import load_spec, run_spec
    from tasksafe.experiments.spec import check_fresh_seeds, parse_only

    loaded = load_spec(spec)
    if loaded.report:
        check_fresh_seeds(loaded, spec)
    results_dir = results or f"results/{loaded.name}"
    if log_cell is not None:
        click.echo(cell_log_text(loaded, results_dir, log_cell), nl=False)
        return
    if address and executor != "ray":
        raise click.UsageError("--address is for --executor ray")
    run_spec(loaded, results_dir, dry_run=dry_run, echo=click.echo, only=parse_only(list(only)), executor=executor,
             address=address)


def cell_log_text(spec, results_dir: str, prefix: str) -> str:
    """The log of the one cell of `spec` whose id starts with `prefix`."""
    from tasksafe.cli.output import printable
    from tasksafe.errors import UserError
    from tasksafe.experiments.grid import cell_artifacts, cell_log
    from tasksafe.experiments.spec import expand

    matches = [cell for cell in expand(spec) if cell.id.startswith(prefix)] if prefix else []
    if len(matches) != 1:
        raise UserError(f"--log {prefix!r} matches {len(matches)} cells of {spec.name}; give more of a cell id")
    path = cell_log(cell_artifacts(spec, results_dir), matches[0].id)
    if not path.is_file():
        raise UserError(f"cell {matches[0].id} has no log yet ({path})")
    return printable(path.read_text(encoding="utf-8", errors="replace"))
