"""The `hf` backend: batched transformers generation. Prompts are sorted by length and
batched with left padding, so a batch wastes little on padding and every prompt ends right
before its reply; generation is greedy by default and uses the KV cache."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from tqdm.auto import tqdm

from tasksafe.generate.base import BACKENDS, Conversation, GenerationParams


class Completion(NamedTuple):
    text: str
    prompt_tokens: int
    completion_tokens: int
    stopped: bool  # ended its turn (False: cut at max_new_tokens)


@BACKENDS.register("hf", description="batched Hugging Face transformers generation (default)")
class HFBackend:
    name = "hf"
    local_weights = True

    def __init__(self, model, tokenizer, batch_size: int | str = "auto", max_batch_tokens: int = 16384,
                 progress: bool = False):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_batch_tokens, self.progress = batch_size, max_batch_tokens, progress

    @classmethod
    def from_name(cls, model: str, adapter: str | None = None, **kwargs) -> HFBackend:
        from tasksafe.models.load import load_model

        return cls(*load_model(model, adapter=adapter), **kwargs)

    @classmethod
    def for_target(cls, model: str, adapter: str | None = None, base_url: str | None = None,
                   progress: bool = False) -> HFBackend:
        return cls.from_name(model, adapter=adapter, progress=progress)

    def scoring_model(self) -> tuple:
        return self.model, self.tokenizer

    def encode(self, conversation: Conversation) -> list[int]:
        """The prompt's tokens, ending where the reply starts; a conversation that ends with an
        assistant message is continued from inside that message (a pre-filled reply opening)."""
        prefilled = bool(conversation) and conversation[-1]["role"] == "assistant"
        return self.tokenizer.apply_chat_template(list(conversation), add_generation_prompt=not prefilled,
                                                  continue_final_message=prefilled, tokenize=True, return_dict=False)

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped into batches, longest prompts first; with batch_size 'auto' a
        batch holds as many prompts as fit `max_batch_tokens` (prompt + new tokens)."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        if self.batch_size != "auto":
            return [order[i:i + int(self.batch_size)] for i in range(0, len(order), int(self.batch_size))]
        batches, current, width = [], [], 0
        for i in order:
            width = max(width, lengths[i]) if current else lengths[i]
            if current and width * (len(current) + 1) > self.max_batch_tokens:
                batches.append(current)
                current, width = [], lengths[i]
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams = GenerationParams()) -> list[str]:
        return [c.text for c in self.complete(conversations, params)]

    def complete(self, conversations: Sequence[Conversation],
                 params: GenerationParams = GenerationParams()) -> list[Completion]:
        """`generate`, with each reply's token counts: the prompt's, the reply's up to its end of
        turn, and whether it stopped there (False: it ran into max_new_tokens)."""
        import torch

        tokenizer, model = self.tokenizer, self.model
        encoded = [self.encode(c) for c in conversations]
        lengths = [len(ids) + params.max_new_tokens for ids in encoded]
        outputs: list[Completion] = [Completion("", 0, 0, True)] * len(encoded)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        eos = getattr(model.generation_config, "eos_token_id", None)
        stops = {*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id, pad} - {None}
        sampling = params.temperature > 0
        if sampling:
            torch.manual_seed(params.seed)
        batches = self._batches(lengths)
        for batch in tqdm(batches, desc="generating", disable=not self.progress, unit="batch"):
            width = max(len(encoded[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                ids = encoded[i]
                input_ids[row, width - len(ids):] = torch.tensor(ids)
                attention[row, width - len(ids):] = 1
            with torch.inference_mode():
                generated = model.generate(
                    input_ids=input_ids.to(model.device), attention_mask=attention.to(model.device),
                    max_new_tokens=params.max_new_tokens, do_sample=sampling, use_cache=True, pad_token_id=pad,
                    **({"temperature": params.temperature, "top_p": params.top_p} if sampling else
                       {"temperature": None, "top_p": None, "top_k": None}),
                )
            for row, i in enumerate(batch):
                new = generated[row, width:].tolist()
                ended = next((n for n, token in enumerate(new) if token in stops), None)
                outputs[i] = Completion(tokenizer.decode(new, skip_special_tokens=True).strip(), len(encoded[i]),
                                        len(new) if ended is None else ended, ended is not None)
        return outputs
