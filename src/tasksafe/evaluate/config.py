"""The evaluation settings, defined once: `EvalSettings` is how a model is measured (the
experiment spec's `eval`), `EvalConfig` adds what is measured (the `tasksafe evaluate`
command, with `--config FILE`). Every name is checked against its registry when the settings
are made, so a typo fails at once, not hours into a run."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from tasksafe.models.precision import PRECISION_HELP, Precision
from tasksafe.settings import Settings, check_names

MILLION = 10**6


class EvalSettings(Settings):
    harmful: list[str] = Field(default_factory=lambda: ["advbench"], min_length=1,
                               description="harmful-prompt sets (comma-separated on the command line)")
    n: int | None = Field(None, ge=1, le=MILLION, description="harmful prompts sampled per set (none: all)")
    task_n: int = Field(200, ge=1, le=MILLION, description="task test items sampled")
    overrefusal_n: int | None = Field(None, ge=1, le=MILLION, description="XSTest safe prompts (none: all 250)")
    heldout_n: int | None = Field(50, ge=1, le=MILLION, description="prompts of the first harmful set asked in each "
                                                                     "held-out attacker phrasing (none: skip them)")
    prompt_half: Literal["all", "dev", "test"] = Field(
        "all", description="harmful prompts: all, or one of two disjoint halves fixed by a hash of their ids: dev "
                           "(developing a defence) or test (the report's numbers)")
    sealed: bool = Field(True, description="also ask the sealed held-out phrasings; off while developing a defence, "
                                           "so they stay unseen (evaluate/phrasings.py)")
    harmful_max_new_tokens: int = Field(64, ge=64, le=8192,
                                        description="new tokens per harmful prompt (judges read the opening)")
    judge: str = Field("keywords", description="judge name (tasksafe judge list)")
    judge_options: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the judge's factory")
    backend: str = Field("hf", description="generation backend: hf, vllm or openai-compatible")
    base_url: str | None = Field(None, description="endpoint of the openai-compatible backend")
    loglik: bool = Field(True, description="also score the choices by log-likelihood where a task has choices")
    precision: Precision = Field("fp32", description=PRECISION_HELP + "; local backends only")

    @field_validator("harmful", mode="before")
    @classmethod
    def _split(cls, value):
        items = [value] if isinstance(value, str) else value
        if isinstance(items, (list, tuple)) and all(isinstance(v, str) for v in items):
            return [name.strip() for v in items for name in v.split(",") if name.strip()]
        return value

    @field_validator("harmful")
    @classmethod
    def _harmful_sets(cls, value):
        from tasksafe.data import DATASETS
        from tasksafe.data.records import Kind

        check_names(value, DATASETS)
        harmful = [n for n in DATASETS if DATASETS.info(n)["kind"] is Kind.HARMFUL]
        for name in value:
            if name not in harmful:
                raise ValueError(f"{name!r} is not a harmful-prompt set; choose one of: {', '.join(harmful)}")
        return value

    @field_validator("judge")
    @classmethod
    def _judge(cls, value):
        from tasksafe.judges import JUDGES

        check_names([value], JUDGES)
        return value

    @field_validator("backend")
    @classmethod
    def _backend(cls, value):
        from tasksafe.generate import BACKENDS

        check_names([value], BACKENDS)
        return value


class EvalConfig(EvalSettings):
    target: str = Field(description="a run directory of tasksafe finetune, or a model name/path")
    task: str | None = Field(None, description="task for accuracy, in the format the run was trained on")
    strategy: str | None = Field(None, description="in-format frame for a plain model (a run knows its own)")
    train_data: str | None = Field(None, description="for a target that is not a run directory (a provider's model): "
                                                     "the chat JSONL it was trained on, whose frame the in-format and "
                                                     "held-out prompts use")
    seed: int = Field(0, ge=0, lt=2**32, description="seed for sampling prompts and items")

    @field_validator("task", "strategy")
    @classmethod
    def _registered(cls, value, info):
        from tasksafe.strategies import STRATEGIES
        from tasksafe.tasks import TASKS

        if value is not None:
            check_names([value], {"task": TASKS, "strategy": STRATEGIES}[info.field_name])
        return value
