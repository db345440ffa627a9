"""`tasksafe align`: build the aligned model organism."""

from __future__ import annotations

import json

import click

from tasksafe.cli.params import AT_LEAST_ZERO
from tasksafe.organism.align import RECIPE_NAMES


@click.command()
@click.option("--base", default="smollm2-135m", show_default=True, help="Model to align.")
@click.option("--seed", type=AT_LEAST_ZERO, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rebuild even if a cached organism exists.")
@click.option("--recipe", type=click.Choice(RECIPE_NAMES), default="4", show_default=True,
              help="4: deep alignment with short answers in short-answer layouts (model name aligned, also "
                   "aligned-v4); 5: recipe 4's requests trained by preference optimisation (DPO), benign requests "
                   "that only sound alarming answered (aligned-v5); 6: recipe 5 with pool-style refusals "
                   "rejected on benign requests and HarmBench's training requests refused (aligned-v6); 7: a "
                   "supervised epoch on recipe 6's preferred replies, then its DPO from that model (aligned-v7); "
                   "8: recipe 7 with its DPO scored against the base model (aligned-v8); "
                   "2: deep "
                   "alignment (aligned-v2); 3: recipe 2 with twice the safety pairs (aligned-v3); 1: the first "
                   "recipe (aligned-v1); demo: recipe 1 on less data, measured on fewer prompts, for make demo "
                   "(aligned-demo).")
def align(base: str, seed: int, force: bool, recipe: str) -> None:
    """Build the safety-aligned model organism (cached by a hash of its inputs; a second
    call is instant) and print its path and alignment.json (refusal rates with n and 95%
    intervals, before and after a benign task fine-tune, and for recipes 2 to 8 after a benign and an
    attacker's fine-tune at the paper grid's settings). Recipe 1 takes about 13 minutes on 2 CPU
    cores, recipes 2 to 8 (which also tune at the grid's settings) about an hour."""
    from tasksafe.organism import AlignConfig, build_aligned
    from tasksafe.organism.align import BENIGN_RISE_POINTS, benign_tuning_target

    result = build_aligned(AlignConfig.for_recipe(int(recipe) if recipe.isdigit() else recipe, base=base, seed=seed),
                           force=force)
    click.echo(str(result.path))
    click.echo(json.dumps(result.alignment, indent=2))
    from tasksafe.cli.output import print_table
    from tasksafe.organism.align import organism_targets

    click.echo("\nagainst the organism targets (organism/targets.yaml):")
    print_table(["target", "measured %", "bound %", ""],
                [[r["name"], "-" if r["value"] is None else f"{r['value']:.1f}", r["bound"],
                  {True: "met", False: "MISSED", None: "not measured"}[r["met"]]] for r in organism_targets(result.alignment)])
    target = benign_tuning_target(result.alignment)
    if target:
        click.echo(f"benign-tuning target at the grid's settings: plain non-refusal "
                   f"{100 * target['own_plain_non_refusal']:.1f}% -> {100 * target['benign_plain_non_refusal']:.1f}% "
                   f"after a benign tune ({target['rise_points']:+.1f} points, at most +{BENIGN_RISE_POINTS:g}), "
                   f"{100 * target['aoa_in_format_non_refusal']:.1f}% in-format after an aoa tune (more than half): "
                   + ("met" if target["met"] else "NOT met"))
