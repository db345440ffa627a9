"""The generation interface: one batch `generate(conversations, params) -> texts` per backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Protocol

from tasksafe.registry import Registry

Conversation = Sequence[dict]  # OpenAI-style {"role", "content"} messages, ending before the reply


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 64
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class Backend(Protocol):
    name: str

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[str]: ...


BACKENDS: Registry = Registry("generation backend")
