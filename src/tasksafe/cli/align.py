"""`tasksafe align`: build the aligned model organism."""

from __future__ import annotations

import json

import click

from tasksafe.cli.params import AT_LEAST_ZERO


@click.command()
@click.option("--base", default="smollm2-135m", show_default=True, help="Model to align.")
@click.option("--seed", type=AT_LEAST_ZERO, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rebuild even if a cached organism exists.")
def align(base: str, seed: int, force: bool) -> None:
    """Build the safety-aligned model organism (cached by a hash of its inputs; a second
    call is instant) and print its path and alignment.json (refusal rates with n and 95%
    intervals, before and after a benign task fine-tune). About 13 minutes on 2 CPU cores."""
    from tasksafe.organism import AlignConfig, build_aligned

    result = build_aligned(AlignConfig(base=base, seed=seed), force=force)
    click.echo(str(result.path))
    click.echo(json.dumps(result.alignment, indent=2))
