"""The fine-tuning configuration: typed, with help per field; defaults < YAML < CLI flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from tasksafe.errors import UserError


@dataclass
class FinetuneConfig:
    model: str = field(default="smollm2-135m", metadata={"help": "registered model name or HF path/id"})
    data: str = field(default="", metadata={"help": "training set, chat JSONL"})
    output_dir: str = field(default="", metadata={"help": "run directory"})
    method: str = field(default="lora", metadata={"help": "lora or full"})
    epochs: float = field(default=1.0, metadata={"help": "passes over the data"})
    lr: float = field(default=1e-4, metadata={"help": "peak learning rate (linear decay, 5% warm-up)"})
    batch_size: int = field(default=8, metadata={"help": "examples per optimiser step (per device)"})
    grad_accum: int = field(default=1, metadata={"help": "gradient accumulation steps"})
    max_length: int = field(default=512, metadata={"help": "tokens per example (longer ones are cut)"})
    seed: int = field(default=0, metadata={"help": "seed for initialisation and data order"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                             "up_proj", "down_proj"],
                                    metadata={"help": "modules that get LoRA adapters"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    save_steps: int = field(default=50, metadata={"help": "checkpoint every N steps (for resuming)"})
    logging_steps: int = field(default=5, metadata={"help": "log the loss every N steps"})
    max_steps: int = field(default=-1, metadata={"help": "stop after N steps (-1: run all epochs)"})

    def __post_init__(self):
        if self.method not in ("lora", "full"):
            raise UserError(f"--method is lora or full, got {self.method!r}")
        if self.epochs <= 0 or self.lr <= 0 or self.batch_size < 1 or self.max_length < 8:
            raise UserError("epochs and lr must be positive, batch size at least 1, max length at least 8")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown fine-tuning setting(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
