"""The `hf` backend: batched transformers generation. Prompts are sorted by length and spread
evenly over as few batches as fit a token budget; greedy replies come from
`tasksafe.generate.greedy` (a shared opening computed once, a preallocated KV cache, ended rows
leaving the batch), sampled ones from transformers' `generate`. The weights are in the
precision asked for (fp32 by default), a run's adapter merged
into them (outside the reference decoding), attention on the key/value heads as they are
(`greedy.grouped_attention`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from tqdm.auto import tqdm

from tasksafe.generate.base import BACKENDS, Conversation, GenerationParams
from tasksafe.generate.greedy import greedy_generate, greedy_tokens, use_grouped_attention


class Completion(NamedTuple):
    text: str
    prompt_tokens: int
    completion_tokens: int
    stopped: bool  # ended its turn (False: cut at max_new_tokens)


def _packed(order: list[int], lengths: list[int], max_tokens: int, rows: int | None = None) -> list[list[int]]:
    """`order` cut into batches filled in turn while width x rows <= `max_tokens` (and at most
    `rows` prompts each)."""
    batches, current, width = [], [], 0
    for i in order:
        width = max(width, lengths[i]) if current else lengths[i]
        if current and (width * (len(current) + 1) > max_tokens or len(current) == rows):
            batches.append(current)
            current, width = [], lengths[i]
        current.append(i)
    return batches + [current] if current else batches


@BACKENDS.register("hf", description="batched Hugging Face transformers generation (default)")
class HFBackend:
    name = "hf"
    local_weights = True

    def __init__(self, model, tokenizer, batch_size: int | str = "auto", max_batch_tokens: int = 32768,
                 progress: bool = False, reference: bool = False):
        self.model, self.tokenizer = model, tokenizer
        self.batch_size, self.max_batch_tokens, self.progress = batch_size, max_batch_tokens, progress
        self.reference = reference
        if reference:  # what every build before the fast path used
            self.max_batch_tokens = 16384
        else:
            use_grouped_attention(model)

    @classmethod
    def from_name(cls, model: str, adapter: str | None = None, precision: str = "fp32", **kwargs) -> HFBackend:
        """The backend over a registered model (+ adapter) in `precision`. `reference=True`
        decodes with transformers' `generate` in the original batches (filled in order up to
        16,384 tokens), token for token what builds before the fast path produced: the
        organism's recipes use it so that a rebuild gives the same weights."""
        from tasksafe.models.load import load_model

        merge = not kwargs.get("reference", False)  # generation only: no adapter computation per token
        return cls(*load_model(model, adapter=adapter, precision=precision, merge_adapter=merge), **kwargs)

    @classmethod
    def for_target(cls, model: str, adapter: str | None = None, base_url: str | None = None,
                   progress: bool = False, precision: str = "fp32") -> HFBackend:
        return cls.from_name(model, adapter=adapter, progress=progress, precision=precision)

    def scoring_model(self) -> tuple:
        return self.model, self.tokenizer

    def encode(self, conversation: Conversation) -> list[int]:
        """The prompt's tokens, ending where the reply starts; a conversation that ends with an
        assistant message is continued from inside that message (a pre-filled reply opening)."""
        prefilled = bool(conversation) and conversation[-1]["role"] == "assistant"
        return self.tokenizer.apply_chat_template(list(conversation), add_generation_prompt=not prefilled,
                                                  continue_final_message=prefilled, tokenize=True, return_dict=False)

    def _batches(self, lengths: list[int]) -> list[list[int]]:
        """Indices grouped into batches, longest prompts first; with batch_size 'auto' each
        batch within `max_batch_tokens` (prompt + new tokens) and the prompts spread evenly (no
        batch of a few leftover prompts)."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        if self.batch_size != "auto":
            return [order[i:i + int(self.batch_size)] for i in range(0, len(order), int(self.batch_size))]
        packed = _packed(order, lengths, self.max_batch_tokens)
        if self.reference:
            return packed
        return _packed(order, lengths, self.max_batch_tokens, rows=-(-len(order) // len(packed)))

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
            if sampling or self.reference:
                replies = self._generate([encoded[i] for i in batch], params, pad)
            else:
                replies = greedy_generate(model, [encoded[i] for i in batch], params.max_new_tokens, stops, pad)
            for i, new in zip(batch, replies):
                ended = next((n for n, token in enumerate(new) if token in stops), None)
                outputs[i] = Completion(tokenizer.decode(new, skip_special_tokens=True).strip(), len(encoded[i]),
                                        len(new) if ended is None else ended, ended is not None)
        return outputs

    def stream(self, conversation: Conversation, params: GenerationParams = GenerationParams()):
        """One reply to `conversation`, as it is generated: an iterator of text pieces (each the
        new text since the last, whole characters only), then a final `Completion` with the whole
        reply's counts. The tokens are the ones `complete` chooses (greedy through the same
        decoding loop, sampled through `generate`), so the pieces join to its text (before the
        final strip of white space). A greedy reply is generated step by step as the reader asks
        for it, in the reader's thread; a sampled one in a thread of its own, at most `STREAM_AHEAD`
        tokens ahead. Either stops when the reader closes the iterator (a client that went away)."""
        import queue
        import threading

        import torch

        tokenizer = self.tokenizer
        prompt = self.encode(conversation)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        eos = getattr(self.model.generation_config, "eos_token_id", None)
        stops = {*(eos if isinstance(eos, list) else [eos]), tokenizer.eos_token_id, pad} - {None}
        tokens: queue.Queue = queue.Queue(maxsize=STREAM_AHEAD)
        failure: list[BaseException] = []
        closed = threading.Event()

        def hand_on(token) -> None:
            while True:
                if closed.is_set():
                    raise _ReaderGone
                try:
                    return tokens.put(token, timeout=0.1)
                except queue.Full:
                    continue

        if params.temperature == 0 and not self.reference:  # greedy: step by step in the reader's own thread
            yield from self._pieces((token for _, token in greedy_tokens(self.model, [prompt], params.max_new_tokens,
                                                                         stops, pad)), prompt, stops)
            return

        def run():
            try:
                torch.manual_seed(params.seed)
                self._generate([prompt], params, pad, on_token=hand_on)
            except _ReaderGone:
                return
            except BaseException as err:  # handed to the reader, which raises it
                failure.append(err)
            try:
                hand_on(None)
            except _ReaderGone:
                pass

        threading.Thread(target=run, daemon=True).start()
        try:
            yield from self._pieces(iter(tokens.get, None), prompt, stops)
        finally:
            closed.set()
        if failure:
            raise failure[0]

    def _pieces(self, tokens, prompt: list[int], stops: set[int]):
        """Text pieces as `tokens` arrive (whole characters only), then the final `Completion`."""
        new: list[int] = []
        sent = ""
        for token in tokens:
            new.append(token)
            text = self.tokenizer.decode(new, skip_special_tokens=True)
            if not text.endswith("\ufffd") and len(text) > len(sent):  # a character split over tokens waits
                yield text[len(sent):]
                sent = text
            if token in stops:
                break
        stop_at = next((n for n, token in enumerate(new) if token in stops), None)
        yield Completion(self.tokenizer.decode(new, skip_special_tokens=True).strip(), len(prompt),
                         len(new) if stop_at is None else stop_at, stop_at is not None)

    def _generate(self, prompts: list[list[int]], params: GenerationParams, pad: int,
                  on_token=None) -> list[list[int]]:
        """Replies through `model.generate` (left padding, KV cache): sampled ones, and greedy
        ones for the reference decoding."""
        import torch

        width = max(len(ids) for ids in prompts)
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, ids in enumerate(prompts):
            input_ids[row, width - len(ids):] = torch.tensor(ids)
            attention[row, width - len(ids):] = 1
        streamer = _TokenStreamer(on_token, skip=width) if on_token is not None else None
        with torch.inference_mode():
            generated = self.model.generate(
                input_ids=input_ids.to(self.model.device), attention_mask=attention.to(self.model.device),
                max_new_tokens=params.max_new_tokens, do_sample=params.temperature > 0, use_cache=True,
                pad_token_id=pad, streamer=streamer,
                **({"temperature": params.temperature, "top_p": params.top_p}
                   if params.temperature > 0 else {"temperature": None, "top_p": None, "top_k": None}))
        return [generated[row, width:].tolist() for row in range(len(prompts))]


STREAM_AHEAD = 8
"""How many tokens a streamed generation may run ahead of its reader."""


class _ReaderGone(Exception):
    """The reader of a streamed reply closed it: generation stops."""


class _TokenStreamer:
    """What transformers' `generate` calls with each new token (`streamer=`): hands each one of
    a single-row generation to `on_token`, after the prompt's `skip` tokens it is first given."""

    def __init__(self, on_token, skip: int):
        self.on_token, self.skip = on_token, skip

    def put(self, value) -> None:
        ids = value.reshape(-1).tolist()
        if self.skip:  # the first call carries the prompt
            self.skip = 0
            return
        for token in ids:
            self.on_token(token)

    def end(self) -> None:
        pass
