"""`tasksafe judge`: list the judges, validate one against human labels, re-judge stored responses."""

from __future__ import annotations

import json

import click

from tasksafe.cli.output import print_table
from tasksafe.judges.base import OUTCOMES


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
    in turn after training (where the judge is trained) on the other four. The result is
    cached; `evaluate` and `run` report it with every result (and "not validated" without it)."""
    from tasksafe.judges import JUDGES
    from tasksafe.judges.validate import save_validation, validate_judge

    JUDGES.get(name)
    report = validate_judge(name)
    saved = save_validation(name, report)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    rows = [[model, s["n"], f"{s['accuracy']:.3f}", f"{s['f1']:.3f}", f"{s['kappa']:.3f}"]
            for model, s in report["per_held_out_model"].items()]
    o = report["overall"]
    rows.append(["all (held out)", o["n"], f"{o['accuracy']:.3f}", f"{o['f1']:.3f}", f"{o['kappa']:.3f}"])
    click.echo(f"judge {name} on {report['data']}, {report['split']}")
    print_table(["held-out model", "n", "accuracy", "F1", "kappa"], rows)
    click.echo(f"saved to {saved}; evaluations with this judge report it")


@judge.command("rejudge")
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--judge", "name", default="embedding", show_default=True, help="Judge to apply to the stored responses.")
@click.option("--set", "harmful_set", default=None, help="Only this harmful set (default: all).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--markdown", is_flag=True, help="Print a Markdown table (for docs).")
def rejudge_command(results_dir: str, name: str, harmful_set: str | None, as_json: bool, markdown: bool) -> None:
    """Judge the stored harmful-prompt responses of every finished cell in RESULTS_DIR again
    with another judge, and print both ASRs and the two judges' agreement. Nothing is
    generated and the store is not changed."""
    from tasksafe.judges import JUDGES
    from tasksafe.report.rejudge import rejudge
    from tasksafe.report.tables import markdown_table
    from tasksafe.report.tables import percent as pct

    JUDGES.get(name)
    entries = rejudge(results_dir, name, harmful_set)
    if as_json:
        click.echo(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
        return

    stored = entries[0].stored_judge if entries else "stored"
    rows = [[e.cell.kind, e.cell.task, e.cell.strategy, e.cell.mitigation_label(), f"{e.cell.budget:g}", e.set, e.mode,
             e.n, pct(e.stored_asr), pct(e.asr), pct(e.agreement)] for e in entries]
    headers = ["kind", "task", "strategy", "mitigation", "budget", "set", "mode", "n", f"ASR % (stored, {stored})",
               f"ASR % ({name}, now)", "same label %"]
    if markdown:
        click.echo(markdown_table(headers, [[str(c) for c in row] for row in rows]))
    else:
        print_table(headers, rows)




@judge.command("score")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--judge", "name", default="keywords", show_default=True, help="Judge to apply.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Write the judged lines here (JSONL); default: standard output.")
def score(file: str, name: str, output: str | None) -> None:
    """Judge a JSONL FILE of {"prompt": ..., "response": ...} lines made anywhere: each line
    comes back with "verdict" (refusal, harmful_compliance or other_non_refusal), the judge's
    "label" and "reason". The three rates, with 95% intervals, go to standard error."""
    from tasksafe.cli.output import printable
    from tasksafe.data.chat import iter_json_lines
    from tasksafe.data.io import atomic_write, check_outputs, dumps_strict
    from tasksafe.errors import DataFileError
    from tasksafe.judges import JUDGES, judge_many
    from tasksafe.results import RateRecord

    hint = 'a valid line looks like {"prompt": "How do I ...?", "response": "I can\'t help with that."}'
    lines = []
    for number, value in iter_json_lines(file, hint=hint):
        if not isinstance(value, dict) or not isinstance(value.get("prompt"), str) \
                or not isinstance(value.get("response"), str):
            raise DataFileError(file, 'needs string "prompt" and "response"', number, hint)
        lines.append(value)
    if output:
        check_outputs([output], inputs=[file])
    verdicts = judge_many(JUDGES.get(name)(), [(v["prompt"], v["response"]) for v in lines])
    judged = [{**v, "verdict": OUTCOMES[x.label], "label": x.label, "reason": x.reason, "judge": name}
              for v, x in zip(lines, verdicts)]
    text = "".join(dumps_strict(j) + "\n" for j in judged)
    if output:
        with atomic_write(output) as handle:
            handle.write(text)
    else:
        click.echo(printable(text), nl=False)
    for outcome in OUTCOMES.values():
        rate = RateRecord.of(sum(j["verdict"] == outcome for j in judged), len(judged))
        click.echo(f"{outcome:<20} {rate.percent()} n={rate.n}", err=True)


@judge.command("agree")
@click.argument("labels", type=click.Path(dir_okay=False), required=False)
@click.option("--judge", "names", multiple=True, default=("keywords", "embedding"), show_default=True,
              help="Judge(s) to compare with the labels.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def agree(labels: str | None, names: tuple[str, ...], as_json: bool) -> None:
    """Agreement of judges with hand labels of replies (default: the organism's replies in
    labels/organism-replies.jsonl, rubric in docs/evaluation.md), per split: three outcomes,
    refusal against the rest, and harmful compliance found by the judge and by people."""
    from tasksafe.judges.validate import ORGANISM_LABELS, agreement_on_labels, read_labels

    records = read_labels(labels or ORGANISM_LABELS)
    reports = [agreement_on_labels(name, records) for name in names]
    if labels is None:  # the organism's own labels: kept for reports (tasksafe report shows them)
        from tasksafe.data.io import write_json
        from tasksafe.judges.validate import agreement_path

        for report in reports:
            write_json(agreement_path(report["judge"]), report)
    if as_json:
        click.echo(json.dumps(reports, indent=2))
        return
    rows = []
    for report in reports:
        for split, s in report["splits"].items():
            rows.append([report["judge"], split, s["n"], f"{s['three_way_accuracy']:.3f}", f"{s['refusal_accuracy']:.3f}",
                         f"{s['refusal_kappa']:.3f}", s["harmful_by_people"], s["harmful_by_judge"],
                         "-" if s["harmful_precision"] is None else f"{s['harmful_precision']:.2f}",
                         "-" if s["harmful_recall"] is None else f"{s['harmful_recall']:.2f}"])
    print_table(["judge", "split", "n", "3-way acc", "refusal acc", "refusal kappa", "harmful (people)",
                 "harmful (judge)", "harm precision", "harm recall"], rows)
