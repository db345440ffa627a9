"""`tasksafe audit`: inspect a user dataset."""

from __future__ import annotations

import json

import click

from tasksafe.cli.output import printable


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-known-prompts", is_flag=True, help="Skip the search for known harmful prompts in the data.")
def audit(file: str, as_json: bool, no_known_prompts: bool) -> None:
    """Audit a user dataset FILE (chat JSONL, prompt/completion JSONL or Alpaca JSON).

    Prints the inferred frame(s) and how much of the data fits them, then risk findings with
    evidence (line numbers and matching text) and an overall risk level. Exits 0 whatever
    the risk (it is a report) and 2 when the file cannot be read."""
    from tasksafe.audit import audit_examples, known_harmful_index, render_report
    from tasksafe.data.chat import read_numbered_examples

    numbered = read_numbered_examples(file)
    index = None if no_known_prompts else known_harmful_index()
    report = audit_examples([ex for _, ex in numbered], [n for n, _ in numbered], source=file, harmful_index=index)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else printable(render_report(report)))
