"""Generation backends behind one interface: `generate(conversations, params) -> texts`."""

from tasksafe.generate import hf, openai_compatible, vllm_backend  # noqa: F401  (register the backends)
from tasksafe.generate.base import BACKENDS, Backend, Conversation, GenerationParams
from tasksafe.generate.cache import CachedBackend, GenerationCache, file_fingerprint
from tasksafe.generate.hf import HFBackend


def generator_for(model: str, max_new_tokens: int = 256):
    """A plain batch callable (conversations -> texts) over the `hf` backend, greedy; what
    the Paraphrase LLM renderer takes."""
    backend = HFBackend.from_name(model)
    params = GenerationParams(max_new_tokens=max_new_tokens)
    return lambda conversations: backend.generate(conversations, params)


__all__ = ["BACKENDS", "Backend", "CachedBackend", "Conversation", "GenerationCache", "GenerationParams", "HFBackend",
           "file_fingerprint", "generator_for"]
