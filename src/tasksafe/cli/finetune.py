"""`tasksafe finetune`: one fine-tuning run, locally (TRL) or through a provider's API."""

from __future__ import annotations

import click

from tasksafe.cli.settings import settings_from, settings_options
from tasksafe.errors import UserError
from tasksafe.train.config import FinetuneConfig


@click.command()
@settings_options(FinetuneConfig, skip=("output_dir",))
@click.option("--backend", type=click.Choice(["local", "openai-compatible"]), default="local", show_default=True,
              help="Train here (TRL) or send the job to an OpenAI-compatible fine-tuning API.")
@click.option("--base-url", default=None, help="API base URL for --backend openai-compatible.")
@click.option("-o", "--output", "output_dir", required=True, type=click.Path(file_okay=False), help="Run directory.")
def finetune(config_file, backend, base_url, output_dir, **flags) -> None:
    """Fine-tune MODEL on a chat JSONL training set (loss on assistant tokens only).

    The run directory gets the adapter (or model), config.json, train_log.json, hook.json (the
    mitigation's inference hook when the data came from `tasksafe protect`) and README.md;
    when the protected data's mitigation has a post-training step (Safe LoRA), it is applied
    before the run is finished. Rerun the same command to resume from the last checkpoint.
    Settings come from their defaults, then --config FILE (YAML/JSON), then the flags. Runs
    unchanged under `accelerate launch` (see docs/models.md)."""
    from tasksafe.data.io import check_output_dir

    check_output_dir(output_dir)
    config = settings_from(FinetuneConfig, config_file, flags, output_dir=output_dir)
    if backend == "openai-compatible":
        from tasksafe.train.provider import run_provider_job

        if not base_url:
            raise UserError("--backend openai-compatible needs --base-url")
        result = run_provider_job(base_url=base_url, model=config.model, data=config.data, output_dir=output_dir,
                                  epochs=config.epochs, seed=config.seed)
        click.echo(f"fine-tuned model: {result['fine_tuned_model']} (run record in {output_dir}/provider_job.json)")
        return
    from tasksafe.train import finetune as run_finetune

    result = run_finetune(config)
    click.echo(f"trained {result.steps} steps, final loss {result.train_loss:.4f}; run in {result.run_dir}")
