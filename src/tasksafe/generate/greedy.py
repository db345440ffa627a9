"""Greedy decoding for the `hf` backend, written for what an evaluation asks: many prompts,
short replies, most of them sharing an opening (the chat template's default system prompt, a
persona's system prompt).

What it does that `model.generate` does not:
- the prompts' shared opening is computed once and its keys and values copied to every row;
- the key/value cache is written into a buffer with room for the whole reply, not grown by
  concatenation at every step (which copies the whole cache each token);
- rows that have ended their turn leave the batch (in groups, each removal copies the cache),
  so a batch is not held up by its longest reply;
- attention runs on the key/value heads as they are (`grouped_attention`): transformers' CPU
  attention copies each key/value head once per query head it serves (`repeat_kv`) at every
  layer and step when a padding mask is given, which was most of a decoding step's time.

The tokens are those of greedy `model.generate` up to each reply's end of turn (a test checks
it on a small model in fp32); in bf16, rounding can make a different token the most likely
one, as in any bf16 generation.
"""

from __future__ import annotations

from collections.abc import Sequence

MIN_SHARED_PREFIX = 8  # tokens; a shorter shared opening is not worth a separate pass
GROUPED_ATTENTION = "tasksafe_grouped"


def grouped_attention(module, query, key, value, attention_mask, scaling: float, dropout: float = 0.0, **kwargs):
    """Attention with the query heads of a key/value head as one group, so no key or value is
    copied: query (batch, heads, q, dim) reshaped to (batch, kv heads, group x q, dim).
    `attention_mask` is transformers' additive float mask (its `eager` mask). Returns
    (output (batch, q, heads, dim), None), as transformers' attention functions do."""
    import torch

    batch, heads, length, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    scores = torch.matmul(query.reshape(batch, kv_heads, group * length, dim), key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        scores = (scores.view(batch, kv_heads, group, length, -1)
                  + attention_mask[:, :, None, :, : key.shape[-2]]).view(batch, kv_heads, group * length, -1)
    weights = torch.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    output = torch.matmul(weights, value).view(batch, heads, length, value.shape[-1])
    return output.transpose(1, 2).contiguous(), None


def use_grouped_attention(model) -> None:
    """Make `model` (or the model inside a PEFT wrapper) attend with `grouped_attention`."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(GROUPED_ATTENTION, grouped_attention)
    AttentionMaskInterface.register(GROUPED_ATTENTION, eager_mask)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.set_attn_implementation(GROUPED_ATTENTION)


def shared_prefix_length(rows: Sequence[Sequence[int]]) -> int:
    """Tokens every row starts with, leaving at least one token of each row after it."""
    if not rows:
        return 0
    shortest = min(len(r) for r in rows)
    first, length = rows[0], 0
    while length < shortest - 1 and all(r[length] == first[length] for r in rows):
        length += 1
    return length


def _buffered_layer(capacity: int):
    """A transformers cache layer that writes into a preallocated buffer (grown by doubling
    if a reply runs past `capacity`), exposing the filled part as views."""
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        def update(self, key_states, value_states, *args, **kwargs):
            n = key_states.shape[-2]
            if not self.is_initialized:
                self.is_initialized, self.device, self.filled = True, key_states.device, 0
                b, h, _, d = key_states.shape
                self.k_buffer = key_states.new_empty((b, h, max(capacity, n), d))
                self.v_buffer = value_states.new_empty((b, h, max(capacity, n), value_states.shape[-1]))
            if self.filled + n > self.k_buffer.shape[-2]:
                self.k_buffer = self._grown(self.k_buffer, self.filled + n)
                self.v_buffer = self._grown(self.v_buffer, self.filled + n)
            self.k_buffer[:, :, self.filled:self.filled + n] = key_states
            self.v_buffer[:, :, self.filled:self.filled + n] = value_states
            self.filled += n
            self._views()
            return self.keys, self.values

        def _grown(self, buffer, needed: int):
            bigger = buffer.new_empty((*buffer.shape[:2], max(needed, 2 * buffer.shape[-2]), buffer.shape[-1]))
            bigger[:, :, :self.filled] = buffer[:, :, :self.filled]
            return bigger

        def _views(self) -> None:
            self.keys, self.values = self.k_buffer[:, :, :self.filled], self.v_buffer[:, :, :self.filled]

        def batch_select_indices(self, indices) -> None:
            if self.is_initialized:
                self.k_buffer, self.v_buffer = self.k_buffer[indices], self.v_buffer[indices]
                self._views()

        def repeat_rows(self, rows: int) -> None:
            """One row (a shared opening) becomes `rows` identical rows."""
            if self.is_initialized:
                self.k_buffer = self.k_buffer.expand(rows, -1, -1, -1).contiguous()
                self.v_buffer = self.v_buffer.expand(rows, -1, -1, -1).contiguous()
                self._views()

    return BufferedLayer


def _cache_keyword(module) -> str:
    """transformers 5.25 renamed `past_key_values` to `cache` in the models' forward."""
    import inspect

    return "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"


def greedy_generate(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, stops: set[int], pad: int,
                    compact_share: float = 0.25) -> list[list[int]]:
    """Each prompt's greedy reply tokens, up to and including its first token in `stops` (or
    `max_new_tokens` of them). Rows that ended leave the batch once they are `compact_share`
    of it."""
    replies: list[list[int]] = [[] for _ in prompts]
    for row, token in greedy_tokens(model, prompts, max_new_tokens, stops, pad, compact_share):
        replies[row].append(token)
    return replies


def greedy_tokens(model, prompts: Sequence[Sequence[int]], max_new_tokens: int, stops: set[int], pad: int,
                  compact_share: float = 0.25):
    """`greedy_generate` one step at a time: yields (row, token) as each token is chosen, in the
    thread that iterates it (streaming); closing the iterator stops the generation."""
    import torch
    from transformers.cache_utils import Cache

    n = len(prompts)
    if n == 0 or max_new_tokens <= 0:
        return
    device = model.device
    shared = shared_prefix_length(prompts)
    shared = shared if shared >= MIN_SHARED_PREFIX else 0
    width = max(len(p) for p in prompts) - shared
    cache = Cache(layer_class_to_replicate=_buffered_layer(shared + width + max_new_tokens))
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder, head = base.get_decoder(), base.get_output_embeddings()
    cached = {_cache_keyword(decoder): cache, "use_cache": True}

    def next_logits(**inputs):
        """The output layer on each row's last position only, on a contiguous (rows, hidden)
        tensor (transformers' `logits_to_keep` slice made CPU linear copy the output weight
        once per row, 10 GB for a batch of 192)."""
        hidden = decoder(**inputs, **cached).last_hidden_state
        return head(hidden[:, -1].contiguous())

    if shared:
        with torch.inference_mode():
            decoder(input_ids=torch.tensor([list(prompts[0][:shared])], device=device), **cached)
        for layer in cache.layers:
            layer.repeat_rows(n)
    # the rest of each prompt, padded on the left of its own part: [shared | pads | own tokens]
    input_ids = torch.full((n, width), pad, dtype=torch.long)
    mask = torch.zeros((n, shared + width), dtype=torch.long)
    mask[:, :shared] = 1
    for row, prompt in enumerate(prompts):
        own = list(prompt[shared:])
        input_ids[row, width - len(own):] = torch.tensor(own)
        mask[row, shared + width - len(own):] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, shared:]
    # each step computes under inference mode and yields outside it: a reader that resumes the
    # iterator from another thread (a server's thread pool) finds no mode left set
    with torch.inference_mode():
        chosen = next_logits(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                             position_ids=positions.to(device)).argmax(-1).tolist()
    next_position = mask.sum(-1, keepdim=True)
    rows = list(range(n))  # which prompt each batch row is
    running = [True] * n
    for step in range(max_new_tokens):
        for k, (row, token) in enumerate(zip(rows, chosen)):
            if running[k]:
                running[k] = token not in stops
                yield row, token
        alive = [k for k, r in enumerate(running) if r]
        if not alive or step == max_new_tokens - 1:
            break
        tokens = torch.tensor(chosen)
        with torch.inference_mode():
            if len(rows) - len(alive) >= max(1, compact_share * len(rows)):
                keep = torch.tensor(alive)
                cache.batch_select_indices(keep.to(device))
                mask, next_position, tokens = mask[keep], next_position[keep], tokens[keep]
                rows, running = [rows[k] for k in alive], [True] * len(alive)
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=-1)
            chosen = next_logits(input_ids=tokens[:, None].to(device), attention_mask=mask.to(device),
                                 position_ids=next_position.to(device)).argmax(-1).tolist()
        next_position = next_position + 1
