"""The fine-tuning settings, defined once: `FinetuneSettings` is what a fine-tune is (the
experiment spec's `train`), `FinetuneConfig` adds which model, which data and where (the
`tasksafe finetune` command, with `--config FILE`). Defaults < YAML < CLI flags."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tasksafe.models.precision import PRECISION_HELP, Precision
from tasksafe.settings import Settings

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class FinetuneSettings(Settings):
    method: Literal["lora", "full"] = Field("lora", description="lora (an adapter) or full (every weight)")
    epochs: float = Field(1.0, gt=0, le=100, description="passes over the training set")
    lr: float = Field(1e-4, gt=0, lt=1, description="peak learning rate (linear decay, 5% warm-up)")
    batch_size: int = Field(8, ge=1, le=4096, description="examples per optimiser step (per device)")
    grad_accum: int = Field(1, ge=1, le=1024, description="gradient accumulation steps")
    max_length: int = Field(512, ge=16, le=131072, description="tokens per example (longer ones are cut)")
    lora_r: int = Field(8, ge=1, le=1024, description="LoRA rank")
    lora_alpha: int | None = Field(None, ge=1, le=65536, description="LoRA scaling alpha (default: 2 x lora_r)")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout")
    lora_targets: list[str] = Field(default_factory=lambda: list(LORA_TARGETS), min_length=1,
                                    description="modules that get LoRA adapters")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay")
    precision: Precision = Field("fp32", description=PRECISION_HELP + " (LoRA holds its frozen base in bf16; the "
                                                                       "adapter, its optimiser state and the loss stay fp32)")

    @property
    def alpha(self) -> int:
        """The LoRA alpha in use: the given one, else twice the rank."""
        return self.lora_alpha or 2 * self.lora_r


class FinetuneConfig(FinetuneSettings):
    model: str = Field("smollm2-135m", description="registered model name or HF path/id")
    data: str = Field(description="training set, chat JSONL")
    output_dir: str = Field(description="run directory")
    seed: int = Field(0, ge=0, lt=2**32, description="seed for initialisation and data order")
    save_steps: int = Field(50, ge=1, description="checkpoint every N steps (for resuming)")
    logging_steps: int = Field(5, ge=1, description="log the loss every N steps")
    max_steps: int = Field(-1, ge=-1, description="stop after N steps (-1: run all epochs)")
    validation_data: str | None = Field(None, description="held-out chat JSONL: its loss (assistant tokens) is "
                                                          "measured after training, in validation.json")
