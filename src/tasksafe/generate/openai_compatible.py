"""The `openai-compatible` backend: any chat-completions endpoint through the official
`openai` client, with bounded concurrency and the client's retries."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from tasksafe.errors import MissingDependencyError, UserError
from tasksafe.generate.base import BACKENDS, Conversation, GenerationParams


@BACKENDS.register("openai-compatible", description="any OpenAI-compatible chat completions endpoint")
class OpenAICompatibleBackend:
    name = "openai-compatible"
    local_weights = False

    def __init__(self, model: str, base_url: str | None = None, api_key: str | None = None, concurrency: int = 8,
                 max_retries: int = 5):
        try:
            import openai
        except ImportError:
            raise MissingDependencyError("openai") from None
        self.model, self.concurrency = model, concurrency
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or os.environ.get("OPENAI_API_KEY", "unused"),
                                    max_retries=max_retries)

    @classmethod
    def for_target(cls, model: str, adapter: str | None = None, base_url: str | None = None,
                   progress: bool = False, precision: str = "fp32") -> OpenAICompatibleBackend:
        if adapter:
            raise UserError("the openai-compatible backend serves models by name; it cannot load a local adapter")
        return cls(model, base_url=base_url)

    def scoring_model(self) -> None:
        return None

    def _one(self, conversation: Conversation, params: GenerationParams) -> str:
        response = self.client.chat.completions.create(
            model=self.model, messages=list(conversation), max_tokens=params.max_new_tokens,
            temperature=params.temperature, top_p=params.top_p, seed=params.seed)
        return (response.choices[0].message.content or "").strip()

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams = GenerationParams()) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(lambda c: self._one(c, params), conversations))
