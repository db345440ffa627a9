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
    """A registered backend class: made by name through `BACKENDS.get(name).for_target(...)`,
    one batch `generate`; `scoring_model` gives (model, tokenizer) where the backend has the
    weights in this process (log-likelihood scoring), else None; `local_weights` says whether
    the weights are files here (to fingerprint for the generation cache). `precision`
    (tasksafe.models.precision) is for backends that hold the weights here; the others ignore it."""

    name: str
    local_weights: bool

    @classmethod
    def for_target(cls, model: str, adapter: str | None = None, base_url: str | None = None,
                   progress: bool = False, precision: str = "fp32") -> Backend: ...

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[str]: ...

    def scoring_model(self) -> tuple | None: ...


BACKENDS: Registry = Registry("generation backend")
