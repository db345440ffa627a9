"""Build a task-specific fine-tuning dataset: sample task items, render them with a strategy."""

from __future__ import annotations

import random

from tasksafe.data.chat import ChatExample
from tasksafe.data.datasets import dataset_info, load
from tasksafe.data.records import Kind, TaskItem
from tasksafe.errors import UserError
from tasksafe.strategies.base import STRATEGIES
from tasksafe.tasks.formats import TASKS


def sample_items(task: str, split: str, n: int | None, seed: int) -> list[TaskItem]:
    """`n` items of `task`'s `split`, sampled without replacement with `seed` (all if n is None)."""
    TASKS.get(task)
    if dataset_info(task).kind is not Kind.TASK:
        raise UserError(f"{task!r} is not a task dataset")
    items = load(task, split=split)
    if n is None or n >= len(items):
        return items
    if n <= 0:
        raise UserError(f"--n must be positive, got {n}")
    return random.Random(seed).sample(items, n)


def build_dataset(task: str, strategy: str, split: str = "train", n: int | None = None,
                  seed: int = 0) -> list[ChatExample]:
    """Chat examples for `task` in `strategy`'s structure; the same arguments give the same
    examples, byte for byte."""
    chosen = STRATEGIES.get(strategy)
    return [chosen.example(item, seed) for item in sample_items(task, split, n, seed)]
