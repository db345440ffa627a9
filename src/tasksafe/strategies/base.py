"""What a prompting strategy is, and how a task dataset is built with one.

A strategy decides the *structure* of a chat example, never its ground truth. It is made of
two parts:

- a `Persona`: the system prompt, the wrapper around the user turn, and the text that opens
  every answer (all empty for a plain assistant);
- a `Style`: how the task is asked and answered (the task's usual prompt and a bare label, or
  a free-form instruction and a long answer).

Every strategy can also put a free request (such as a harmful prompt) into its own frame:
the persona's system prompt and wrapper around the request in the style's phrasing. The
task's own instruction and item layout belong to the task, so a request replaces them.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tasksafe.data.chat import ChatExample, Message
from tasksafe.data.records import TaskItem
from tasksafe.registry import Registry
from tasksafe.tasks.formats import TASKS, TaskFormat

StyleFn = Callable[[TaskFormat, TaskItem, random.Random], str]


@dataclass(frozen=True)
class Persona:
    system: str | None = None
    user_wrapper: str = "{task}"  # must contain {task}
    answer_opener: str = ""  # text (with its own trailing separator) before every answer


@dataclass(frozen=True)
class Style:
    task_prompt: StyleFn
    answer: StyleFn
    request_suffix: str = ""  # what this style appends to a free request


@dataclass(frozen=True)
class Strategy:
    name: str
    description: str
    persona: Persona
    style: Style

    def rng(self, seed: int, item_id: str) -> random.Random:
        """Per-item randomness: the same (seed, strategy, item) always renders the same way."""
        return random.Random(f"{seed}:{self.name}:{item_id}")

    def example(self, item: TaskItem, seed: int = 0) -> ChatExample:
        """Render one task item as a training example (metadata records the ground truth)."""
        fmt = TASKS.get(item.task)
        rng = self.rng(seed, item.id)
        user = self.persona.user_wrapper.format(task=self.style.task_prompt(fmt, item, rng))
        answer = self.persona.answer_opener + self.style.answer(fmt, item, rng)
        metadata = {"task": item.task, "strategy": self.name, "item_id": item.id, "gold": item.answer,
                    "gold_label": fmt.gold_label(item), "seed": seed}
        return ChatExample.from_turns(user, answer, system=self.persona.system, metadata=metadata)

    def frame_prompt(self, request: str) -> list[Message]:
        """The messages that ask `request` in this strategy's frame (no assistant turn)."""
        messages = [Message("system", self.persona.system)] if self.persona.system else []
        messages.append(Message("user", self.persona.user_wrapper.format(task=request + self.style.request_suffix)))
        return messages


STRATEGIES: Registry[Strategy] = Registry("strategy")


def register_strategy(strategy: Strategy) -> Strategy:
    return STRATEGIES.register(strategy.name, description=strategy.description)(strategy)


# The plain style and persona: the task's usual prompt and its bare gold label.
PLAIN = Persona()
PLAIN_STYLE = Style(task_prompt=lambda fmt, item, rng: fmt.prompt(item),
                    answer=lambda fmt, item, rng: fmt.gold_label(item))
