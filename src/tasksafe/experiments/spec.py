"""Experiment specs: a YAML grid of models x tasks x strategies x mitigations x budgets x
seeds, with the fine-tuning and evaluation settings of their stages (`FinetuneSettings`,
`EvalSettings`). Typed (pydantic), unknown keys rejected, every name checked against its
registry and every value's range checked when the spec is loaded; `expand` turns a spec into
typed `CellConfig`s."""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tasksafe.errors import UserError
from tasksafe.evaluate.config import EvalSettings
from tasksafe.executors import Resources
from tasksafe.settings import Settings, check_names, read_mapping, validation_message
from tasksafe.train.config import FinetuneSettings

MILLION = 10**6
HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def check_model_names(names: list[str]) -> None:
    """A model is a registered name, a local checkpoint folder or a Hugging Face id."""
    from tasksafe.models.registry import MODELS

    for name in names:
        if name not in MODELS and not Path(name).is_dir() and not HF_ID.match(name):
            raise ValueError(f"unknown model {name!r}; give a registered name ({', '.join(MODELS)}), a local "
                             "checkpoint folder or a Hugging Face id (org/name)")


class Spec(Settings):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$",
                      description="names the results folder: letters, digits, '.', '_' and '-'")
    models: list[str] = Field(default_factory=lambda: ["aligned"], min_length=1,
                              description="registered model names, local checkpoint folders or HF ids (org/name)")
    tasks: list[str] = Field(min_length=1)
    strategies: list[str] = Field(min_length=1)
    mitigations: list[str] = Field(default_factory=lambda: ["none"], min_length=1)
    budgets: list[float] = Field(default_factory=lambda: [0.05],
                                 description="safety examples: a count (>= 1) or a fraction of the data (< 1)")
    mitigation_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="options per mitigation, e.g. {paraphrase: {placement: slot}}")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    train_examples: int = Field(300, ge=1, le=MILLION, description="user examples built per task and strategy")
    evaluate_base: bool = Field(True, description="also evaluate each model before fine-tuning, per strategy")
    train: FinetuneSettings = Field(default_factory=FinetuneSettings)
    eval: EvalSettings = Field(default_factory=lambda: EvalSettings(n=200))
    resources: dict[Literal["base", "finetune"], Resources] = Field(
        default_factory=dict, description="what each cell kind asks of a worker under --executor ray, e.g. "
                                          "{finetune: {num_gpus: 1, num_cpus: 4}}; unset kinds ask 1 CPU")
    artifacts_dir: str | None = Field(None, description="where datasets, adapters and generations go (default: "
                                                        "RESULTS/artifacts); on several nodes a shared filesystem path")
    retries: int = Field(2, ge=0, le=10, description="runs of a cell after its worker died, before it is failed")
    report: bool = Field(False, description="report cells, not development: every fine-tune must use a seed (its data "
                                            "draw, protection draw and training seed) that no dev spec beside it "
                                            "used for the same task, strategy and mitigation; tasksafe run refuses "
                                            "it otherwise")

    def resources_for(self, kind: str) -> Resources:
        return self.resources.get(kind, Resources())

    @field_validator("tasks", "strategies", "mitigations")
    @classmethod
    def _registered(cls, value, info):
        from tasksafe.mitigations import MITIGATIONS
        from tasksafe.strategies import STRATEGIES
        from tasksafe.tasks import TASKS

        check_names(value, {"tasks": TASKS, "strategies": STRATEGIES, "mitigations": MITIGATIONS}[info.field_name])
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value):
        check_model_names(value)
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
        from tasksafe.mitigations import mitigation_options

        for name, options in value.items():
            try:
                mitigation_options(name, options)
            except UserError as err:
                raise ValueError(str(err)) from None
        return value

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, value):
        from tasksafe.mitigations import Budget

        for budget in value:
            if budget == 0:
                raise ValueError("a budget of 0 adds nothing: use the mitigation none")
            try:
                Budget.of(budget)
            except UserError as err:
                raise ValueError(str(err)) from None
        return value


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec; every problem is one line naming the file and the key."""
    data = read_mapping(path)
    try:
        return Spec.model_validate(data)
    except ValidationError as err:
        raise UserError(validation_message(err, str(path))) from None


def check_fresh_seeds(spec: Spec, spec_path: str | Path) -> None:
    """For a report spec: refuse it when one of its fine-tunes repeats the seed of a dev cell
    (a spec beside it, in the same folder, whose evaluation asks the dev half of the prompts)
    of the same task, strategy and mitigation, since its model would be that dev cell's model
    asked other prompts. A seed sets the user data's draw, the protection's draw and training."""
    folder = Path(spec_path).resolve().parent
    used: dict[tuple, str] = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.resolve() == Path(spec_path).resolve():
            continue
        other = load_spec(path)
        if other.report or other.eval.prompt_half != "dev":
            continue
        for cell in expand(other):
            if cell.kind == "finetune":
                used.setdefault((cell.task, cell.strategy, cell.mitigation, cell.seed), path.name)
    clashes = [(cell, used[key]) for cell in expand(spec) if cell.kind == "finetune"
               and (key := (cell.task, cell.strategy, cell.mitigation, cell.seed)) in used]
    if clashes:
        shown = "; ".join(f"{c.task} {c.strategy} {c.mitigation} seed {c.seed} (dev: {name})" for c, name in clashes[:5])
        raise UserError(f"{spec_path}: a report spec's fine-tunes must be fresh, but {len(clashes)} repeat a dev "
                        f"cell's seed: {shown}; give the report spec seeds no dev spec uses")


class CellConfig(BaseModel):
    """One cell of a grid: what `run_cell` runs and the store keeps. `id` is a hash of the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = ""
    kind: Literal["base", "finetune"]
    model: str
    task: str
    strategy: str
    mitigation: str
    budget: float
    seed: int
    options: dict[str, Any] | None = Field(None, description="the mitigation's options, when the spec gives some")
    train_examples: int | None = None
    train: FinetuneSettings | None = None
    eval: EvalSettings

    def identity(self) -> dict:
        """The cell without its id and without unset parts, as the id hashes it. Settings added
        later are left out at the value every earlier cell ran with (`precision` fp32, every
        harmful prompt, sealed phrasings asked), so those cells keep their ids."""
        identity = {k: v for k, v in self.model_dump(mode="json", exclude={"id"}).items() if v is not None}
        for part in ("train", "eval"):
            if part in identity:
                identity[part] = {k: v for k, v in identity[part].items() if ADDED_LATER.get(k, object()) != v}
        return identity

    def with_id(self) -> CellConfig:
        return self.model_copy(update={"id": cell_id(self.identity())})

    def mitigation_label(self) -> str:
        """A short label for the mitigation as its spec gave it: the name, and for options a tag
        that names the variant ("paraphrase_wide #3f2a"), the same in every report; the report's
        key table (`options_text`) says what each tag's options are."""
        return f"{self.mitigation} #{cell_id(self.options)[:4]}" if self.options else self.mitigation

    def options_text(self) -> str:
        """The options the spec gave, in full ("placement=slot, shots=3"), for the key table."""
        return ", ".join(f"{k}={v}" for k, v in sorted((self.options or {}).items()))


ADDED_LATER = {"precision": "fp32", "prompt_half": "all", "sealed": True}
"""Settings added after cells were run, with the value those cells ran with."""


def cell_id(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


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


def selected(cell: CellConfig, only: dict[str, set[str]]) -> bool:
    """Whether `cell` passes every filter (numbers compare by value: budget 0.1 == 0.10)."""
    def same(value, wanted: str) -> bool:
        if isinstance(value, (int, float)):
            try:
                return float(wanted) == float(value)
            except ValueError:
                return False
        return str(value) == wanted

    return all(any(same(getattr(cell, key), w) for w in wanted) for key, wanted in only.items())


def expand(spec: Spec) -> list[CellConfig]:
    """The grid's cells, in run order: base evaluations first, then fine-tunes. Mitigations
    that add no safety examples (their registry entry says so) get one cell (budget 0) instead
    of one per budget. A cell carries its mitigation's options only when the spec gives some,
    so adding options for one mitigation leaves the other cells (and their ids) as they were."""
    from tasksafe.mitigations import MITIGATIONS

    cells = []
    for model, task, strategy, seed in itertools.product(spec.models, spec.tasks, spec.strategies, spec.seeds):
        if spec.evaluate_base:
            cells.append(CellConfig(kind="base", model=model, task=task, strategy=strategy, mitigation="none",
                                    budget=0, seed=seed, eval=spec.eval))
    for model, task, strategy, mitigation, seed in itertools.product(spec.models, spec.tasks, spec.strategies,
                                                                     spec.mitigations, spec.seeds):
        adds = MITIGATIONS.info(mitigation)["adds_examples"]
        for budget in (spec.budgets if adds else [0]):
            cells.append(CellConfig(kind="finetune", model=model, task=task, strategy=strategy, mitigation=mitigation,
                                    budget=budget, seed=seed, options=spec.mitigation_options.get(mitigation) or None,
                                    train_examples=spec.train_examples, train=spec.train, eval=spec.eval))
    return [cell.with_id() for cell in cells]
