"""`tasksafe build`: a task-specific fine-tuning dataset in one prompting strategy."""

from __future__ import annotations

import click

from tasksafe.cli.output import print_table
from tasksafe.cli.params import AT_LEAST_ONE, AT_LEAST_ZERO
from tasksafe.errors import UserError


def _list() -> None:
    from tasksafe.data import dataset_info
    from tasksafe.strategies import STRATEGIES
    from tasksafe.tasks import TASKS

    click.echo("Tasks:")
    print_table(["name", "kind", "rows"], [[t, TASKS.info(t)["kind"], dataset_info(t).rows] for t in TASKS])
    click.echo("\nStrategies:")
    print_table(["name", "structure"], [[s, STRATEGIES.info(s)["description"]] for s in STRATEGIES])


def preview(examples) -> None:
    """Print examples as readable role-tagged turns."""
    for n, example in enumerate(examples):
        if n:
            click.echo("-" * 60)
        for message in example.messages:
            click.echo(f"[{message.role}]\n{message.content}\n")


@click.command()
@click.option("--task", help="Task dataset, e.g. sst2, agnews, mmlu, gsm8k, piqa, boolq.")
@click.option("--strategy", default="benign", show_default=True,
              help="Prompting strategy: benign, aoa, autoif, autoif_aoa or prefix.")
@click.option("--split", default="train", show_default=True, help="Which split of the task to draw items from.")
@click.option("--n", "n", type=AT_LEAST_ONE, default=None, help="How many items to sample (default: the whole split).")
@click.option("--seed", type=AT_LEAST_ZERO, default=0, show_default=True, help="Seed for sampling and phrasing.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Chat JSONL file to write.")
@click.option("--preview", is_flag=True, help="Print the examples readably instead of writing a file.")
@click.option("--list", "list_", is_flag=True, help="List the tasks and strategies, then exit.")
def build(task, strategy, split, n, seed, output, preview, list_) -> None:
    """Build a fine-tuning dataset: sample items of a task and render each one with a
    prompting strategy. The strategy changes only the structure of the examples, never the
    gold answers; metadata records task, strategy, item id and gold answer.

    \b
    Example:
      tasksafe build --task sst2 --strategy aoa --split train --n 300 --seed 0 -o aoa.jsonl
    """
    if list_:
        _list()
        return
    if not task:
        raise UserError("--task is required (tasksafe build --list shows the tasks)")
    if not output and not preview:
        raise UserError("give -o FILE.jsonl to write the dataset, or --preview to print it")
    from tasksafe.data import write_chat_jsonl
    from tasksafe.strategies import STRATEGIES, build_dataset
    from tasksafe.tasks import TASKS

    TASKS.get(task)
    STRATEGIES.get(strategy)
    examples = build_dataset(task, strategy, split=split, n=n, seed=seed)
    if preview:
        globals()["preview"](examples)
    if output:
        count = write_chat_jsonl(output, examples)
        click.echo(f"wrote {count} {strategy} examples of {task}/{split} to {output}", err=bool(preview))
