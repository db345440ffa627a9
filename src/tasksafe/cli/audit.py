"""`tasksafe audit` and `tasksafe protect`: inspect a user dataset, and mix safety data into it."""

from __future__ import annotations

import json

import click

from tasksafe.cli.output import printable
from tasksafe.cli.params import AT_LEAST_ZERO
from tasksafe.errors import UserError

FORCE_HELP = "Allow the output (or its sidecar) to replace an input file; it is read whole first."


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


def _renderer_generate(model: str):
    """A batch generation callable for the LLM renderer (the `hf` backend, greedy)."""
    try:
        from tasksafe.generate import generator_for
    except ImportError:
        raise UserError("the llm renderer needs a generation backend, which this version does not have yet") from None
    return generator_for(model)


@click.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--mitigation", default="paraphrase", show_default=True,
              help="none, mix, bea, ptst, paraphrase or safelora.")
@click.option("--k", type=AT_LEAST_ZERO, default=None, help="Number of safety examples to add.")
@click.option("--fraction", type=click.FloatRange(0, 1), default=None, help="Safety examples as a fraction of the user dataset.")
@click.option("--seed", type=AT_LEAST_ZERO, default=0, show_default=True, help="Seed for sampling and mixing.")
@click.option("--pool", default="bianchi-safety", show_default=True, help="Safety dataset to draw pairs from.")
@click.option("--renderer", type=click.Choice(["template", "llm"]), default="template", show_default=True,
              help="Paraphrase renderer; llm needs --renderer-model.")
@click.option("--renderer-model", default=None, help="Model for the llm renderer (a model name or path).")
@click.option("--no-affixes", is_flag=True, help="Paraphrase: leave out the frame's answer prefix and suffix.")
@click.option("--placement", type=click.Choice(["both", "instruction", "slot"]), default="both", show_default=True,
              help="Paraphrase (template renderer): ask each request where the data gives its instruction, in "
                   "the frame's main slot (its review, question or passage), or alternately both.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Training set (chat JSONL).")
@click.option("--force", is_flag=True, help=FORCE_HELP)
def protect(file, mitigation, k, fraction, seed, pool, renderer, renderer_model, no_affixes, placement,
            output, force) -> None:
    """Mix safety examples into a user dataset FILE with a mitigation and write the training
    set to OUTPUT, plus OUTPUT.meta.json (frame, safety pair ids, inference hook, versions).

    \b
    Example:
      tasksafe protect user.jsonl --mitigation paraphrase --fraction 0.05 --seed 0 -o train.jsonl
    """
    from tasksafe.mitigations import MITIGATIONS, Budget
    from tasksafe.mitigations.protect import protect_file

    MITIGATIONS.get(mitigation)
    if k is None and fraction is None:
        k = 0 if mitigation in ("none", "ptst", "safelora") else None
        if k is None:
            raise UserError("give the safety budget with --k N or --fraction F")
    budget = Budget(k=k, fraction=fraction)
    options = {}
    if mitigation == "paraphrase":
        options = {"renderer": renderer, "keep_affixes": not no_affixes, "placement": placement}
        if renderer == "llm":
            if not renderer_model:
                raise UserError("--renderer llm needs --renderer-model (a model name or path)")
            options["generate"] = _renderer_generate(renderer_model)
    meta = protect_file(file, output, mitigation, budget, seed, pool, force=force, **options)
    click.echo(f"wrote {meta['user_examples'] + meta['safety_examples']} examples ({meta['safety_examples']} safety, "
               f"{mitigation}) to {output}")
