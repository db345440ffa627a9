"""`tasksafe align` and `tasksafe finetune`."""

from __future__ import annotations

import json

import click

from tasksafe.cli.params import AT_LEAST_ONE, AT_LEAST_ZERO, LEARNING_RATE, POSITIVE
from tasksafe.errors import UserError


@click.command()
@click.option("--base", default="smollm2-135m", show_default=True, help="Model to align.")
@click.option("--seed", type=AT_LEAST_ZERO, default=0, show_default=True)
@click.option("--force", is_flag=True, help="Rebuild even if a cached organism exists.")
def align(base: str, seed: int, force: bool) -> None:
    """Build the safety-aligned model organism (cached by a hash of its inputs; a second
    call is instant) and print its path and alignment.json (refusal rates with n and 95%
    intervals, before and after a benign task fine-tune)."""
    from tasksafe.models.align import AlignConfig, build_aligned

    result = build_aligned(AlignConfig(base=base, seed=seed), force=force)
    click.echo(str(result.path))
    click.echo(json.dumps(result.alignment, indent=2))


@click.command()
@click.option("--model", default="smollm2-135m", show_default=True, help="Registered model name or HF path/id.")
@click.option("--data", required=True, type=click.Path(dir_okay=False), help="Training set, chat JSONL.")
@click.option("--method", type=click.Choice(["lora", "full"]), default="lora", show_default=True)
@click.option("--epochs", type=POSITIVE, default=1.0, show_default=True)
@click.option("--lr", type=LEARNING_RATE, default=1e-4, show_default=True, help="Peak learning rate.")
@click.option("--batch-size", type=AT_LEAST_ONE, default=8, show_default=True)
@click.option("--grad-accum", type=AT_LEAST_ONE, default=1, show_default=True)
@click.option("--max-length", type=click.IntRange(min=16), default=512, show_default=True, help="Tokens per example.")
@click.option("--lora-r", type=AT_LEAST_ONE, default=8, show_default=True)
@click.option("--max-steps", type=click.IntRange(min=-1), default=-1, show_default=True, help="Stop after N steps (-1: all epochs).")
@click.option("--seed", type=AT_LEAST_ZERO, default=0, show_default=True)
@click.option("--save-steps", type=AT_LEAST_ONE, default=50, show_default=True, help="Checkpoint every N steps (to resume).")
@click.option("--backend", type=click.Choice(["local", "openai-compatible"]), default="local", show_default=True,
              help="Train here (TRL) or send the job to an OpenAI-compatible fine-tuning API.")
@click.option("--base-url", default=None, help="API base URL for --backend openai-compatible.")
@click.option("-o", "--output", "output_dir", required=True, type=click.Path(file_okay=False), help="Run directory.")
def finetune(model, data, method, epochs, lr, batch_size, grad_accum, max_length, lora_r, max_steps, seed, save_steps,
             backend, base_url, output_dir) -> None:
    """Fine-tune MODEL on a chat JSONL training set (loss on assistant tokens only).

    RUN_DIR gets the adapter (or model), config.json, train_log.json, hook.json (the
    mitigation's inference hook when the data came from `tasksafe protect`) and README.md.
    Rerun the same command to resume from the last checkpoint. Runs unchanged under
    `accelerate launch` (see docs/models.md)."""
    from tasksafe.data.io import check_output_dir

    check_output_dir(output_dir)
    if backend == "openai-compatible":
        from tasksafe.train.provider import run_provider_job

        if not base_url:
            raise UserError("--backend openai-compatible needs --base-url")
        result = run_provider_job(base_url=base_url, model=model, data=data, output_dir=output_dir, epochs=epochs,
                                  seed=seed)
        click.echo(f"fine-tuned model: {result['fine_tuned_model']} (run record in {output_dir}/provider_job.json)")
        return
    from tasksafe.train import FinetuneConfig
    from tasksafe.train import finetune as run_finetune

    config = FinetuneConfig(model=model, data=data, output_dir=output_dir, method=method, epochs=epochs, lr=lr,
                            batch_size=batch_size, grad_accum=grad_accum, max_length=max_length, lora_r=lora_r,
                            lora_alpha=2 * lora_r, max_steps=max_steps, seed=seed,
                            save_steps=save_steps)
    result = run_finetune(config)
    click.echo(f"trained {result.steps} steps, final loss {result.train_loss:.4f}; run in {result.run_dir}")


@click.command()
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--aligned", default="aligned", show_default=True, help="The aligned base model (what the run tuned).")
@click.option("--unaligned", default="smollm2-135m", show_default=True, help="The same model before alignment.")
@click.option("--threshold", type=click.FloatRange(-1, 1), default=0.5, show_default=True,
              help="Layers whose update has a lower cosine similarity to its projection are projected.")
@click.option("-o", "--output", "output_dir", required=True, type=click.Path(file_okay=False), help="New run directory.")
def safelora(run_dir, aligned, unaligned, threshold, output_dir) -> None:
    """Apply Safe LoRA to a finished LoRA run: project each layer's update onto the alignment
    directions (aligned minus unaligned weights) where it has drifted away from them."""
    from tasksafe.data.io import check_output_dir
    from tasksafe.train.safelora import apply_safelora

    check_output_dir(output_dir)
    report = apply_safelora(run_dir, aligned, unaligned, output_dir, threshold)
    click.echo(f"projected {report['projected']} of {report['layers']} layers; new run in {output_dir}")
