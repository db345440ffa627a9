"""The mitigation interface: (user dataset, safety pool, budget, seed) -> training set plus
an optional inference-time hook. Every mitigation is registered with its options, and its
result records which safety pairs it used."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any, Protocol

from tasksafe.data.chat import ChatExample, Message
from tasksafe.data.dedup import NearDuplicateIndex, split_overlapping
from tasksafe.data.records import SafetyPair
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

    def resolve(self, dataset_size: int) -> int:
        if self.k is not None:
            return self.k
        return max(1, round(self.fraction * dataset_size)) if self.fraction > 0 else 0

    def to_dict(self) -> dict:
        return {"k": self.k} if self.k is not None else {"fraction": self.fraction}


@dataclass(frozen=True)
class InferenceHook:
    """A system prompt the provider adds at inference (prepended to the user's own)."""

    system_prompt: str

    def apply(self, messages: Sequence[Message]) -> list[Message]:
        messages = list(messages)
        if messages and messages[0].role == "system":
            return [Message("system", f"{self.system_prompt}\n\n{messages[0].content}")] + messages[1:]
        return [Message("system", self.system_prompt)] + messages

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class MitigationResult:
    examples: list[ChatExample]  # the training set: user data with safety examples mixed in
    safety_ids: list[str]
    hook: InferenceHook | None = None
    config: dict[str, Any] = field(default_factory=dict)  # name and options, enough to rebuild it
    info: dict[str, Any] = field(default_factory=dict)  # what it found (frames, renderer statistics)
    post_training: dict[str, Any] | None = None  # a step applied to the trained weights (safelora)


class Mitigation(Protocol):
    def __call__(self, dataset: Sequence[ChatExample], pool: Sequence[SafetyPair], budget: Budget, seed: int,
                 **options: Any) -> MitigationResult: ...


MITIGATIONS: Registry[Mitigation] = Registry("mitigation")


def sample_pairs(pool: Sequence[SafetyPair], k: int, seed: int) -> list[SafetyPair]:
    """`k` pairs of the pool, seeded, without replacement."""
    if k > len(pool):
        raise UserError(f"the safety pool has {len(pool)} pairs; cannot take {k}")
    return random.Random(f"pairs:{seed}").sample(list(pool), k)


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


@cache
def safety_pool(name: str = "bianchi-safety", exclude: tuple[str, ...] = EVAL_HARMFUL_SETS) -> SafetyPool:
    """A safety pool from the registry with every pair that duplicates or nearly duplicates
    an evaluation prompt (of the `exclude` sets) removed; what was removed is recorded."""
    from tasksafe.data.datasets import load

    pairs = load(name)
    if not pairs or not isinstance(pairs[0], SafetyPair):
        raise UserError(f"{name!r} is not a safety dataset (try bianchi-safety or harmbench-safe)")
    eval_prompts = {r.id: r.prompt for set_name in exclude for r in load(set_name)}
    kept, removed = split_overlapping(pairs, lambda p: p.prompt, NearDuplicateIndex(eval_prompts))
    return SafetyPool(kept, name, removed)
