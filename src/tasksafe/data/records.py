"""Canonical record types that every public dataset is loaded into, one per kind."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any


class Kind(str, Enum):
    TASK = "task"
    HARMFUL = "harmful"
    SAFETY = "safety"
    OVERREFUSAL = "overrefusal"
    LABELLED = "labelled"
    BENIGN = "benign"


@dataclass(frozen=True)
class TaskItem:
    """One ground-truth record of a task. `answer` is the gold answer in the task's canonical
    form: a choice index (as a string) for tasks with `choices`, else a label or number."""

    id: str
    task: str
    question: str
    answer: str
    split: str
    context: str | None = None
    choices: tuple[str, ...] = ()
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class HarmfulPrompt:
    id: str
    prompt: str
    category: str | None
    source: str
    split: str = "test"


@dataclass(frozen=True)
class SafetyPair:
    id: str
    prompt: str
    refusal: str
    source: str


@dataclass(frozen=True)
class OverRefusalPrompt:
    id: str
    prompt: str
    safe: bool
    type: str
    source: str


LABELS = ("full_compliance", "full_refusal", "partial_refusal")


@dataclass(frozen=True)
class LabelledCompletion:
    """A model's response with a human label, for validating judges."""

    id: str
    prompt: str
    response: str
    model: str
    label: str  # one of LABELS
    prompt_safe: bool
    source: str


@dataclass(frozen=True)
class BenignInstruction:
    id: str
    prompt: str
    source: str
    split: str = "train"


Record = TaskItem | HarmfulPrompt | SafetyPair | OverRefusalPrompt | LabelledCompletion | BenignInstruction


def record_to_dict(record: Record) -> dict[str, Any]:
    out = asdict(record)
    if "choices" in out:
        out["choices"] = list(out["choices"])
    return out
