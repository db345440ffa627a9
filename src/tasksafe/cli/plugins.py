"""`tasksafe plugins`: what installed plugins added to the registries."""

from __future__ import annotations

import click


@click.command()
@click.option("--all", "show_all", is_flag=True, help="List the built-in entries too.")
def plugins(show_all: bool) -> None:
    """List the plugins installed (packages with a `tasksafe.plugins` entry point) and the
    mitigations, judges, tasks, datasets and generation backends each one registered; with
    --all, every entry and where it comes from."""
    from tasksafe.cli.output import print_table
    from tasksafe.data import DATASETS
    from tasksafe.generate import BACKENDS
    from tasksafe.judges import JUDGES
    from tasksafe.mitigations import MITIGATIONS
    from tasksafe.registry import load_plugins
    from tasksafe.tasks import TASKS

    names = load_plugins()
    click.echo(f"plugins installed: {', '.join(names) if names else 'none'}")
    rows = []
    for kind, registry in (("mitigation", MITIGATIONS), ("judge", JUDGES), ("task", TASKS), ("dataset", DATASETS),
                           ("backend", BACKENDS)):
        for name in registry:
            module = registry.origin(name)
            if show_all or not module.startswith("tasksafe."):
                rows.append([kind, name, module])
    if rows:
        print_table(["kind", "name", "registered by"], rows)
