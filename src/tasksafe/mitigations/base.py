"""The mitigation interface: (user dataset, safety pool, budget, seed, **options) -> training
set plus an optional inference-time hook and post-training step. A mitigation's registry entry
holds all it is: whether it adds examples, its typed options, and its post-training step
(`register_mitigation`). Its result records which safety pairs it used.

>>> MITIGATIONS.info("mix")["adds_examples"], MITIGATIONS.info("ptst")["adds_examples"]
(True, False)
>>> mitigation_options("paraphrase", {"placement": "sideways"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
tasksafe.errors.UserError: paraphrase option placement: Input should be 'both', ... (got 'sideways'); paraphrase takes ...
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, ValidationError

from tasksafe.data.chat import ChatExample
from tasksafe.data.dedup import NearDuplicateIndex, split_overlapping
from tasksafe.data.records import SafetyPair
from tasksafe.data.sidecar import InferenceHook  # noqa: F401 (re-exported: mitigations return it)
from tasksafe.errors import UserError
from tasksafe.registry import Registry

EVAL_HARMFUL_SETS = ("advbench", "harmbench-val", "bianchi-malicious", "bianchi-qharm", "bianchi-cona",
                     "bianchi-controversial", "bianchi-physical-unsafe", "refusal-direction-harmful", "xstest")
"""Prompts used to evaluate; training safety pairs must not duplicate any of them."""


@dataclass(frozen=True)
class Budget:
    """How many safety examples: a count `k`, or a `fraction` of the user dataset."""

    k: int | None = None
    fraction: float | None = None

    def __post_init__(self):
        if (self.k is None) == (self.fraction is None):
            raise UserError("give the safety budget as exactly one of a count (--k) or a fraction (--fraction)")
        if self.k is not None and self.k < 0:
            raise UserError(f"--k must be at least 0, got {self.k}")
        if self.fraction is not None and not 0 <= self.fraction <= 1:
            raise UserError(f"--fraction must be between 0 and 1, got {self.fraction}")

    @classmethod
    def of(cls, value: float) -> Budget:
        """The one reading of a budget given as one number (a spec's `budgets`, a grid cell): a
        whole number >= 1 is a count of examples, a number in (0, 1) a fraction of the dataset,
        0 none. So 1.0 is one example; a fraction of 100% is only `Budget(fraction=1)`
        (`--fraction 1`)."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 10**6 \
                or (value >= 1 and value != int(value)):
            raise UserError(f"a budget is a count (a whole number >= 1) or a fraction in (0, 1), got {value!r}")
        return cls(k=int(value)) if value >= 1 or value == 0 else cls(fraction=float(value))

    def resolve(self, dataset_size: int) -> int:
        if self.k is not None:
            return self.k
        return max(1, round(self.fraction * dataset_size)) if self.fraction > 0 else 0

    def to_dict(self) -> dict:
        return {"k": self.k} if self.k is not None else {"fraction": self.fraction}


@dataclass
class MitigationResult:
    examples: list[ChatExample]  # the training set: user data with safety examples mixed in
    safety_ids: list[str]
    hook: InferenceHook | None = None
    config: dict[str, Any] = field(default_factory=dict)  # set by apply_mitigation: name and every checked option
    info: dict[str, Any] = field(default_factory=dict)  # what it found (frames, renderer statistics)
    post_training: dict[str, Any] | None = None  # {"name": mitigation, "options": {...}}: a step on the weights
    training: dict[str, Any] | None = None  # set by apply_mitigation from Options.training()


class Mitigation(Protocol):
    def __call__(self, dataset: Sequence[ChatExample], pool: Sequence[SafetyPair], budget: Budget, seed: int,
                 **options: Any) -> MitigationResult: ...


class PostTraining(Protocol):
    """A step on a finished run's weights: rewrite `run_dir/adapter` in place, return a report."""

    def __call__(self, run_dir: Path, base_model: str, options: dict[str, Any]) -> dict: ...


class Options(BaseModel):
    """A mitigation's options; unknown keys are refused. `NoOptions` for a mitigation with none."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    def training(self) -> dict[str, Any] | None:
        """What these options ask of training (written to the sidecar as `training`, e.g.
        {"loss": "per-example"}); None: training as usual. Known before the data is protected,
        so a gateway can refuse a policy whose training it cannot do."""
        return None

    def trained_shapes(self) -> frozenset[str]:
        """The held-out phrasing shapes (evaluate/phrasings.tsv: where the request sits) these
        options train; a phrasing of such a shape is not held out for this mitigation."""
        return frozenset()


class NoOptions(Options):
    pass


MITIGATIONS: Registry[Mitigation] = Registry("mitigation")


def register_mitigation(name: str, description: str, adds_examples: bool = True,
                        options: type[Options] = NoOptions, post_training: PostTraining | None = None,
                        uses_secret: bool = False):
    """Register a mitigation with all its knowledge: whether it adds safety examples (else a
    grid gives it one cell, budget 0), its options model, an optional post-training step
    that `tasksafe finetune` and the grid runner apply to the trained weights, and whether it
    takes a provider's `secret` (a value the data's owner never sees, e.g. BEA's trigger)."""
    return MITIGATIONS.register(name, description=description, adds_examples=adds_examples, options=options,
                                post_training=post_training, uses_secret=uses_secret)


def mitigation_options(name: str, raw: dict[str, Any] | Options | None = None) -> Options:
    """`raw` checked against mitigation `name`'s options model; a bad key or value is a
    `UserError` naming the option and the options there are."""
    model: type[Options] = MITIGATIONS.info(name)["options"]
    if isinstance(raw, model):
        return raw
    try:
        return model.model_validate(raw or {})
    except ValidationError as err:
        first = err.errors()[0]
        option = ".".join(str(p) for p in first["loc"])
        accepted = ", ".join(model.model_fields) or "no options"
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "is not an option"
        got = f" (got {first['input']!r})" if first["type"] not in ("extra_forbidden", "missing") else ""
        raise UserError(f"{name} option {option}: {message}{got}; {name} takes {accepted}") from None


def apply_mitigation(name: str, dataset: Sequence[ChatExample], pool: Sequence[SafetyPair], budget: Budget,
                     seed: int, options: dict[str, Any] | Options | None = None, secret: str | None = None,
                     **extra: Any) -> MitigationResult:
    """Run mitigation `name` with its options checked (`extra`: non-option arguments such as
    Paraphrase's `generate` callable). `secret` reaches only a mitigation registered as using
    one; without it such a mitigation derives its secret from the seed (reproducible research
    runs, where nobody is an adversary)."""
    checked = mitigation_options(name, options)
    if secret is not None and MITIGATIONS.info(name)["uses_secret"]:
        extra["secret"] = secret
    result = MITIGATIONS.get(name)(dataset, pool, budget, seed, **checked.model_dump(), **extra)
    parts = {"parts": result.config["parts"]} if "parts" in result.config else {}  # a composition's own record
    result.config = {"name": name, **checked.model_dump(mode="json"), **parts}  # from the checked options, not by hand
    result.training = checked.training()  # what the options ask of training, whichever mitigation they are
    return result


def run_post_training(run_dir: str | Path, post_training: dict[str, Any] | None, base_model: str) -> dict | None:
    """Apply a protected dataset's post-training step (its sidecar's `post_training`) to a
    finished run, through the step its mitigation registered; None when there is none."""
    if not post_training:
        return None
    step = MITIGATIONS.info(post_training["name"])["post_training"]
    if step is None:
        raise UserError(f"mitigation {post_training['name']!r} has no post-training step")
    return step(Path(run_dir), base_model, dict(post_training.get("options") or {}))


def sample_pairs(pool: Sequence[SafetyPair], k: int, seed: int,
                 keep: Callable[[SafetyPair], bool] | None = None) -> list[SafetyPair]:
    """`k` pairs of the pool, seeded, without replacement. With `keep`, each drawn pair it
    rejects is replaced, in its place, by one it keeps from the rest of the pool (seeded), so the
    draw differs from the unfiltered one only in the pairs replaced.

    >>> pool = [SafetyPair(f"s{i}", f"request {i}", "No." if i % 2 else "Sure!", "x") for i in range(8)]
    >>> [p.id for p in sample_pairs(pool, 4, 0)]
    ['s5', 's2', 's0', 's6']
    >>> [p.id for p in sample_pairs(pool, 4, 0, keep=lambda p: p.refusal == "No.")]
    ['s5', 's1', 's3', 's7']
    """
    if k > len(pool):
        raise UserError(f"the safety pool has {len(pool)} pairs; cannot take {k}")
    drawn = random.Random(f"pairs:{seed}").sample(list(pool), k)
    if keep is None:
        return drawn
    kept = [keep(pair) for pair in drawn]
    taken = {pair.id for pair in drawn}
    spare = [pair for pair in pool if pair.id not in taken and keep(pair)]
    if kept.count(False) > len(spare):
        raise UserError(f"the safety pool has {kept.count(True) + len(spare)} pairs that pass the filter; "
                        f"cannot take {k}")
    refill = iter(random.Random(f"refill:{seed}").sample(spare, kept.count(False)))
    return [pair if ok else next(refill) for pair, ok in zip(drawn, kept)]


def mix_in(dataset: Sequence[ChatExample], extra: Sequence[ChatExample], seed: int) -> list[ChatExample]:
    """The user's examples in their order, with `extra` inserted at seeded random positions."""
    total = len(dataset) + len(extra)
    positions = set(random.Random(f"mix:{seed}").sample(range(total), len(extra)))
    user, added = iter(dataset), iter(extra)
    return [next(added) if i in positions else next(user) for i in range(total)]


@dataclass
class SafetyPool:
    pairs: list[SafetyPair]
    source: str
    removed: list[dict]  # pairs dropped for overlapping evaluation prompts


DEFAULT_POOL = "bianchi-safety"
"""The safety pool every mitigation draws from unless told otherwise."""


@cache
def safety_pool(name: str = DEFAULT_POOL, exclude: tuple[str, ...] = EVAL_HARMFUL_SETS) -> SafetyPool:
    """A safety pool from the registry with every pair that duplicates or nearly duplicates
    an evaluation prompt (of the `exclude` sets) removed; what was removed is recorded."""
    from tasksafe.data.datasets import load

    pairs = load(name)
    if not pairs or not isinstance(pairs[0], SafetyPair):
        raise UserError(f"{name!r} is not a safety dataset (try bianchi-safety or harmbench-safe)")
    eval_prompts = {r.id: r.prompt for set_name in exclude for r in load(set_name)}
    kept, removed = split_overlapping(pairs, lambda p: p.prompt, NearDuplicateIndex(eval_prompts))
    return SafetyPool(kept, name, removed)
