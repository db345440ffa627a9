"""`tasksafe align`: build the aligned model organism."""

from __future__ import annotations

import json

import click

from tasksafe.cli.params import AT_LEAST_ZERO


@click.command()
@click.option("--base", default="smollm2-135m", show_default=True, help="Model to align.")
@click.option("--seed", type=AT_LEAST_ZERO, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rebuild even if a cached organism exists.")
@click.option("--recipe", type=click.Choice(["1", "2"]), default="2", show_default=True,
              help="2: deep alignment, robust to benign tuning at the grid's settings; 1: the first recipe "
                   "(model name aligned-v1).")
def align(base: str, seed: int, force: bool, recipe: str) -> None:
    """Build the safety-aligned model organism (cached by a hash of its inputs; a second
    call is instant) and print its path and alignment.json (refusal rates with n and 95%
    intervals, before and after a benign task fine-tune, and for recipe 2 after a benign and an
    attacker's fine-tune at the paper grid's settings). Recipe 1 takes about 13 minutes on 2 CPU
    cores, recipe 2 about twice that."""
    from tasksafe.organism import AlignConfig, build_aligned

    make = AlignConfig.recipe_2 if recipe == "2" else AlignConfig.recipe_1
    result = build_aligned(make(base=base, seed=seed), force=force)
    click.echo(str(result.path))
    click.echo(json.dumps(result.alignment, indent=2))
