"""The `vllm` backend (optional extra `tasksafe[vllm]`, for GPUs): imported only when used."""

from __future__ import annotations

from collections.abc import Sequence

from tasksafe.errors import MissingDependencyError
from tasksafe.generate.base import BACKENDS, Conversation, GenerationParams


@BACKENDS.register("vllm", description="vLLM offline batched generation (GPU; pip install 'tasksafe[vllm]')")
class VLLMBackend:
    name = "vllm"
    local_weights = True

    def __init__(self, model: str, adapter: str | None = None, **engine_args):
        try:
            import vllm
        except ImportError:
            raise MissingDependencyError("vllm", extra="vllm") from None
        from tasksafe.models.registry import resolve_model

        self._vllm = vllm
        self.llm = vllm.LLM(model=resolve_model(model), enable_lora=adapter is not None, **engine_args)
        self.lora = vllm.lora.request.LoRARequest("adapter", 1, str(adapter)) if adapter else None

    @classmethod
    def for_target(cls, model: str, adapter: str | None = None, base_url: str | None = None,
                   progress: bool = False, precision: str = "fp32") -> VLLMBackend:
        return cls(model, adapter=adapter)

    def scoring_model(self) -> None:
        return None

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams = GenerationParams()) -> list[str]:
        sampling = self._vllm.SamplingParams(max_tokens=params.max_new_tokens, temperature=params.temperature,
                                             top_p=params.top_p, seed=params.seed)
        outputs = self.llm.chat([list(c) for c in conversations], sampling, lora_request=self.lora, use_tqdm=False)
        return [o.outputs[0].text.strip() for o in outputs]
