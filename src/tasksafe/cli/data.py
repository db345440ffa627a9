"""`tasksafe data`: list, show and validate datasets."""

from __future__ import annotations

import json

import click

from tasksafe.cli.output import print_table, printable


@click.group()
def data() -> None:
    """List and inspect the public datasets, and validate chat JSONL files."""


@data.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_datasets(as_json: bool) -> None:
    """Every registered dataset: name, kind, rows, licence, and whether it is available locally."""
    from tasksafe.data import DATASETS, DataFiles, dataset_info

    files = DataFiles()
    rows = []
    for name in DATASETS:
        info = dataset_info(name)
        rows.append({
            "name": name, "kind": info.kind.value, "rows": info.rows, "license": info.license,
            "noncommercial": info.noncommercial, "local": all(files.available_locally(f) for f in info.files + info.aux),
            "files": list(info.files), "description": info.description,
        })
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_table(["name", "kind", "rows", "local", "license"],
                [[r["name"], r["kind"], r["rows"], "yes" if r["local"] else "no", r["license"]] for r in rows])


@data.command("show")
@click.argument("name")
@click.option("-n", "count", type=click.IntRange(min=0), default=3, show_default=True,
              help="How many records to print.")
@click.option("--split", default=None, help="Only this split (e.g. train, test).")
def show(name: str, count: int, split: str | None) -> None:
    """Print the first records of dataset NAME as JSON, one per line."""
    from tasksafe.data import load, record_to_dict

    for record in load(name, split=split)[:count]:
        click.echo(printable(json.dumps(record_to_dict(record), ensure_ascii=False)))


@data.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--prompts", is_flag=True, help="Prompts for generation: the last message need not be the assistant's.")
@click.option("--max-problems", type=click.IntRange(min=0), default=10, show_default=True,
              help="How many problems to list.")
def validate(file: str, as_json: bool, prompts: bool, max_problems: int) -> None:
    """Check a chat JSONL FILE: counts per role and every problem with its line number.

    Exits 0 when the file is valid and 2 when any line has a problem."""
    from tasksafe.data import validate_chat_jsonl

    report = validate_chat_jsonl(file, require_assistant_last=not prompts)
    if as_json:
        click.echo(json.dumps(report.to_dict(max_problems), indent=2))
    else:
        roles = ", ".join(f"{n} {role}" for role, n in report.to_dict()["messages_per_role"].items())
        click.echo(printable(f"{file}: {report.examples} valid examples; messages: {roles}"))
        for line, problem in report.problems[:max_problems]:
            click.echo(printable(f"{file}:{line}: {problem}" if line else f"{file}: {problem}"))
        if len(report.problems) > max_problems:
            click.echo(f"... and {len(report.problems) - max_problems} more problems")
        click.echo("valid" if report.ok else f"invalid: {len(report.problems)} problem(s)")
    raise SystemExit(0 if report.ok else 2)


@data.command("convert")
@click.argument("source", type=click.Path(dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Allow TARGET to be SOURCE (convert in place); it is read whole first.")
def convert(source: str, target: str, force: bool) -> None:
    """Read SOURCE (chat JSONL, prompt/completion JSONL or Alpaca JSON) and write TARGET as
    chat JSONL. Nothing is written unless every record of SOURCE is valid."""
    from tasksafe.data import read_examples, write_chat_jsonl
    from tasksafe.data.io import check_outputs

    check_outputs([target], inputs=[source], force=force)
    count = write_chat_jsonl(target, read_examples(source))
    click.echo(f"wrote {count} examples to {target}")
