"""Training: fine-tune a model on a (protected) chat dataset with TRL + PEFT."""

from tasksafe.train.config import FinetuneConfig
from tasksafe.train.sft import RunResult, finetune, protect_sidecar
from tasksafe.train.tokenize import tokenize_dataset, tokenize_example

__all__ = ["FinetuneConfig", "RunResult", "finetune", "protect_sidecar", "tokenize_dataset", "tokenize_example"]
