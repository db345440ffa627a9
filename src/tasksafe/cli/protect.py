"""`tasksafe protect`: mix safety data into a user dataset with a mitigation."""

from __future__ import annotations

import click

from tasksafe.cli.params import AT_LEAST_ZERO
from tasksafe.errors import UserError
from tasksafe.mitigations.base import DEFAULT_POOL


def parse_options(items: tuple[str, ...]) -> dict[str, str]:
    """`KEY=VALUE` pairs; the mitigation's options model converts and checks the values."""
    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--option {item!r}: expected KEY=VALUE, e.g. --option placement=slot")
        options[key.strip()] = value.strip()
    return options


@click.command()
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@click.option("--mitigation", default="paraphrase", show_default=True,
              help="A registered mitigation: `tasksafe protect --list` names them all with their options (e.g. mix, "
                   "paraphrase, paraphrase_wide, bea, ptst, safelora).")
@click.option("--k", type=AT_LEAST_ZERO, default=None, help="Number of safety examples to add.")
@click.option("--fraction", type=click.FloatRange(0, 1), default=None,
              help="Safety examples as a fraction of the user dataset.")
@click.option("--seed", type=AT_LEAST_ZERO, default=0, show_default=True, help="Seed for sampling and mixing.")
@click.option("--pool", default=DEFAULT_POOL, show_default=True, help="Safety dataset to draw pairs from.")
@click.option("-O", "--option", "option_items", multiple=True, metavar="KEY=VALUE",
              help="A mitigation option, repeatable: e.g. -O placement=slot, -O renderer=llm -O renderer_model=NAME "
                   "(paraphrase), -O threshold=0.4 (safelora).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Training set (chat JSONL).")
@click.option("--force", is_flag=True, help="Allow the output (or its sidecar) to replace an input file; it is "
                                            "read whole first.")
@click.option("--list", "list_", is_flag=True, help="List the mitigations and their options, then exit.")
def protect(file, mitigation, k, fraction, seed, pool, option_items, output, force, list_) -> None:
    """Mix safety examples into a user dataset FILE with a mitigation and write the training
    set to OUTPUT, plus OUTPUT.meta.json (frame, safety pair ids, inference hook, post-training
    step, versions). `tasksafe finetune` on OUTPUT applies the hook's and the post-training
    step's parts that belong to training.

    \b
    Example:
      tasksafe protect user.jsonl --mitigation paraphrase --fraction 0.05 --seed 0 -o train.jsonl
    """
    from tasksafe.mitigations import MITIGATIONS, Budget
    from tasksafe.mitigations.protect import protect_file

    if list_:
        for name in MITIGATIONS:
            info = MITIGATIONS.info(name)
            options = ", ".join(f"{o}={f.get_default(call_default_factory=True)!r}"
                                for o, f in info["options"].model_fields.items()) or "no options"
            click.echo(f"{name:<11} {info['description']}\n{'':<11} options: {options}")
        return
    if not file or not output:
        raise UserError("give the user dataset FILE and the training set to write with -o FILE.jsonl")
    adds = MITIGATIONS.info(mitigation)["adds_examples"]
    if k is None and fraction is None:
        if adds:
            raise UserError("give the safety budget with --k N or --fraction F")
        k = 0
    meta = protect_file(file, output, mitigation, Budget(k=k, fraction=fraction), seed, pool, force=force,
                        options=parse_options(option_items))
    click.echo(f"wrote {meta.user_examples + meta.safety_examples} examples ({meta.safety_examples} safety, "
               f"{mitigation}) to {output}")
