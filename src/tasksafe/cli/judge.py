"""`tasksafe judge validate`: a judge's agreement with human labels."""

from __future__ import annotations

import json

import click

from tasksafe.cli.output import print_table


@click.group()
def judge() -> None:
    """Judges of responses (refusal, compliance, degenerate) and their validation."""


@judge.command("list")
def list_judges() -> None:
    """The registered judges."""
    from tasksafe.judges import JUDGES

    print_table(["name", "what"], [[n, JUDGES.info(n).get("description", "")] for n in JUDGES])


@judge.command("validate")
@click.option("--judge", "name", default="keywords", show_default=True, help="Judge to validate.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def validate(name: str, as_json: bool) -> None:
    """Agreement of a judge with XSTest's human labels, testing on each of the five models
    in turn after training (where the judge is trained) on the other four."""
    from tasksafe.judges import JUDGES
    from tasksafe.judges.validate import validate_judge

    JUDGES.get(name)
    report = validate_judge(name)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = [[model, s["n"], f"{s['accuracy']:.3f}", f"{s['f1']:.3f}", f"{s['kappa']:.3f}"]
            for model, s in report["per_held_out_model"].items()]
    o = report["overall"]
    rows.append(["all (held out)", o["n"], f"{o['accuracy']:.3f}", f"{o['f1']:.3f}", f"{o['kappa']:.3f}"])
    click.echo(f"judge {name} on {report['data']}, {report['split']}")
    print_table(["held-out model", "n", "accuracy", "F1", "kappa"], rows)
