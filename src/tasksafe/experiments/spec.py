"""Experiment specs: a YAML grid of models x tasks x strategies x mitigations x budgets x
seeds, with training and evaluation settings. Typed (pydantic), unknown keys rejected."""

from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasksafe.errors import UserError

NO_BUDGET = ("none", "ptst", "safelora")  # mitigations that add no safety examples
MILLION = 10**6
HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def _check_names(names, registry) -> None:
    """Raise `ValueError` (pydantic's way) for the first name `registry` does not hold."""
    for name in names:
        try:
            registry.get(name)
        except UserError as err:
            raise ValueError(str(err)) from None


class TrainSettings(_Strict):
    method: Literal["lora", "full"] = Field("lora", description="lora or full")
    epochs: float = Field(1.0, gt=0, le=100, description="passes over the training set")
    lr: float = Field(1e-4, gt=0, lt=1, description="peak learning rate")
    batch_size: int = Field(8, ge=1, le=4096, description="examples per step")
    max_length: int = Field(512, ge=16, le=131072, description="tokens per example")
    lora_r: int = Field(8, ge=1, le=1024, description="LoRA rank")


class EvalSettings(_Strict):
    harmful: list[str] = Field(default_factory=lambda: ["advbench"], min_length=1, description="harmful sets")
    n: int | None = Field(200, ge=1, le=MILLION, description="harmful prompts per set (null: all)")
    task_n: int = Field(200, ge=1, le=MILLION, description="task test items")
    overrefusal_n: int | None = Field(None, ge=1, le=MILLION, description="XSTest safe prompts (null: all 250)")
    harmful_max_new_tokens: int = Field(64, ge=64, le=8192,
                                        description="new tokens per harmful prompt (judges read the opening)")
    judge: str = Field("keywords", description="judge name")
    backend: str = Field("hf", description="generation backend")

    @field_validator("harmful")
    @classmethod
    def _harmful_sets(cls, value):
        from tasksafe.data import DATASETS
        from tasksafe.data.records import Kind

        _check_names(value, DATASETS)
        for name in value:
            if DATASETS.info(name)["kind"] is not Kind.HARMFUL:
                harmful = [n for n in DATASETS if DATASETS.info(n)["kind"] is Kind.HARMFUL]
                raise ValueError(f"{name!r} is not a harmful-prompt set; choose one of: {', '.join(harmful)}")
        return value

    @field_validator("judge")
    @classmethod
    def _judge(cls, value):
        from tasksafe.judges import JUDGES

        _check_names([value], JUDGES)
        return value

    @field_validator("backend")
    @classmethod
    def _backend(cls, value):
        from tasksafe.generate import BACKENDS

        _check_names([value], BACKENDS)
        return value


class Spec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                      description="names the results folder: letters, digits, '.', '_' and '-'")
    models: list[str] = Field(default_factory=lambda: ["aligned"], min_length=1,
                              description="registered model names, local checkpoint folders or HF ids (org/name)")
    tasks: list[str] = Field(min_length=1)
    strategies: list[str] = Field(min_length=1)
    mitigations: list[str] = Field(default_factory=lambda: ["none"], min_length=1)
    budgets: list[float] = Field(default_factory=lambda: [0.05],
                                 description="safety examples: a count (>= 1) or a fraction of the data (< 1)")
    mitigation_options: dict[str, dict[str, str | int | float | bool]] = Field(
        default_factory=dict, description="keyword options per mitigation, e.g. {paraphrase: {placement: slot}}")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    train_examples: int = Field(300, ge=1, le=MILLION, description="user examples built per task and strategy")
    evaluate_base: bool = Field(True, description="also evaluate each model before fine-tuning, per strategy")
    train: TrainSettings = Field(default_factory=TrainSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)

    @field_validator("tasks", "strategies", "mitigations")
    @classmethod
    def _registered(cls, value, info):
        from tasksafe.mitigations import MITIGATIONS
        from tasksafe.strategies import STRATEGIES, TASKS

        _check_names(value, {"tasks": TASKS, "strategies": STRATEGIES, "mitigations": MITIGATIONS}[info.field_name])
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value):
        from tasksafe.models.registry import MODELS

        for name in value:
            if name not in MODELS and not Path(name).is_dir() and not HF_ID.match(name):
                raise ValueError(f"unknown model {name!r}; give a registered name ({', '.join(MODELS)}), a local "
                                 "checkpoint folder or a Hugging Face id (org/name)")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value):
        if any(not 0 <= seed < 2**32 for seed in value):
            raise ValueError("a seed is a whole number from 0 to 4294967295")
        return value

    @field_validator("mitigation_options")
    @classmethod
    def _options(cls, value):
        from tasksafe.mitigations import MITIGATIONS

        for name, options in value.items():
            try:
                function = MITIGATIONS.get(name)
            except UserError as err:
                raise ValueError(str(err)) from None
            accepted = [p for p in list(inspect.signature(function).parameters)[4:] if p != "generate"]
            for option in options:
                if option not in accepted:
                    raise ValueError(f"{name} has no option {option!r}; it takes {', '.join(accepted) or 'none'}")
        return value

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, value):
        for budget in value:
            if budget <= 0 or budget > MILLION or (budget >= 1 and budget != int(budget)):
                raise ValueError(f"a budget is a count (a whole number >= 1) or a fraction in (0, 1), got {budget}")
        return value


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec; every problem is one line naming the file and the key."""
    import yaml

    from tasksafe.data.io import read_text

    text = read_text(path, max_bytes=2**20)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from None
    except (ValueError, RecursionError) as err:  # e.g. an integer of thousands of digits
        raise UserError(f"{path}: a value cannot be read ({str(err).split(';')[0]})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a spec is a YAML mapping")
    try:
        return Spec.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise UserError(f"{path}: {where}: {message} (got {_shown(first.get('input'))})") from None


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def cell_id(cell: dict) -> str:
    return hashlib.sha256(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:16]


CELL_KEYS = ("kind", "model", "task", "strategy", "mitigation", "budget", "seed")


def parse_only(filters: list[str]) -> dict[str, set[str]]:
    """`KEY=V1,V2` filters (repeatable) that select part of a grid, e.g. `strategy=benign,aoa`."""
    only: dict[str, set[str]] = {}
    for item in filters:
        key, sep, values = item.partition("=")
        if not sep or key not in CELL_KEYS or not values:
            raise UserError(f"--only {item!r}: expected KEY=VALUE[,VALUE...] with KEY one of {', '.join(CELL_KEYS)}")
        only.setdefault(key, set()).update(v.strip() for v in values.split(","))
    return only


def selected(cell: dict, only: dict[str, set[str]]) -> bool:
    """Whether `cell` passes every filter (numbers compare by value: budget 0.1 == 0.10)."""
    def same(value, wanted: str) -> bool:
        if isinstance(value, (int, float)):
            try:
                return float(wanted) == float(value)
            except ValueError:
                return False
        return str(value) == wanted

    return all(any(same(cell[key], w) for w in wanted) for key, wanted in only.items())


def expand(spec: Spec) -> list[dict]:
    """The grid's cells, in run order: base evaluations first, then fine-tunes. Mitigations
    that add no safety examples get one cell (budget 0) instead of one per budget. A cell
    carries its mitigation's options only when the spec gives some, so adding options for one
    mitigation leaves the other cells (and their ids) as they were."""
    cells = []
    common = {"train_examples": spec.train_examples, "train": spec.train.model_dump(), "eval": spec.eval.model_dump()}
    for model, task, strategy, seed in itertools.product(spec.models, spec.tasks, spec.strategies, spec.seeds):
        if spec.evaluate_base:
            cells.append({"kind": "base", "model": model, "task": task, "strategy": strategy, "mitigation": "none",
                          "budget": 0, "seed": seed, "eval": spec.eval.model_dump()})
    for model, task, strategy, mitigation, seed in itertools.product(spec.models, spec.tasks, spec.strategies,
                                                                     spec.mitigations, spec.seeds):
        for budget in ([0] if mitigation in NO_BUDGET else spec.budgets):
            cells.append({"kind": "finetune", "model": model, "task": task, "strategy": strategy,
                          "mitigation": mitigation, "budget": budget, "seed": seed, **common})
            if spec.mitigation_options.get(mitigation):
                cells[-1]["options"] = spec.mitigation_options[mitigation]
    for cell in cells:
        cell["id"] = cell_id({k: v for k, v in cell.items() if k != "id"})
    return cells
