"""`tasksafe safelora`: Safe LoRA on a finished run, by hand."""

from __future__ import annotations

import click


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--aligned", default="aligned", show_default=True, help="The aligned base model (what the run tuned).")
@click.option("--unaligned", default="smollm2-135m", show_default=True, help="The same model before alignment.")
@click.option("--threshold", type=click.FloatRange(-1, 1), default=0.5, show_default=True,
              help="Layers whose update has a lower cosine similarity to its projection are projected.")
@click.option("-o", "--output", "output_dir", required=True, type=click.Path(file_okay=False), help="New run directory.")
def safelora(run_dir, aligned, unaligned, threshold, output_dir) -> None:
    """Apply Safe LoRA to a finished LoRA run: project each layer's update onto the alignment
    directions (aligned minus unaligned weights) where it has drifted away from them. (A run
    trained on data protected with `--mitigation safelora` gets this step by itself.)"""
    from tasksafe.data.io import check_output_dir
    from tasksafe.mitigations.safelora import apply_safelora

    check_output_dir(output_dir)
    report = apply_safelora(run_dir, aligned, unaligned, output_dir, threshold)
    click.echo(f"projected {report['projected']} of {report['layers']} layers; new run in {output_dir}")
