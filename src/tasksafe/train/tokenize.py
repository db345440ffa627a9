"""Chat examples -> token ids with an exact assistant-only loss mask.

The mask is built turn by turn with the tokenizer's own chat template: the tokens of an
assistant turn are those that rendering the conversation *with* that turn adds to rendering
it up to the generation prompt. So the mask covers each assistant reply and its end-of-turn
token, never the template's role header; a message with `weight` 0 is masked out, and so
is an opening of the final reply named in `metadata["untrained_prefix"]` (text the model is
shown as if it had written it, but does not learn to write).
"""

from __future__ import annotations

from collections.abc import Sequence

from tasksafe.data.chat import ChatExample


def _render_ids(tokenizer, messages: Sequence[dict], generation_prompt: bool) -> list[int]:
    return tokenizer.apply_chat_template(list(messages), tokenize=True, add_generation_prompt=generation_prompt,
                                         return_dict=False)


def tokenize_example(tokenizer, example: ChatExample, max_length: int | None = None) -> dict:
    """{"input_ids", "assistant_masks", "length"} for one example (truncated at the end)."""
    messages = example.to_openai()
    ids = _render_ids(tokenizer, messages, generation_prompt=False)
    mask = [0] * len(ids)
    for i, message in enumerate(example.messages):
        if message.role != "assistant" or message.weight == 0:
            continue
        before = _render_ids(tokenizer, messages[:i], generation_prompt=True)
        through = _render_ids(tokenizer, messages[: i + 1], generation_prompt=False)
        if ids[: len(through)] != through or through[: len(before)] != before:
            raise ValueError("the chat template does not render conversations incrementally; "
                             "cannot locate assistant turns")
        for position in range(len(before), len(through)):
            mask[position] = 1
    prefix = example.metadata.get("untrained_prefix")
    if prefix and example.messages[-1].role == "assistant" and example.messages[-1].content.startswith(prefix):
        start = len(_render_ids(tokenizer, messages[:-1], generation_prompt=True))
        prefix_ids = tokenizer(prefix.rstrip(), add_special_tokens=False)["input_ids"]
        if ids[start:start + len(prefix_ids)] != prefix_ids:
            raise ValueError(f"untrained prefix {prefix!r} does not tokenize on its own boundary")
        for position in range(start, start + len(prefix_ids)):
            mask[position] = 0
    if max_length is not None:
        ids, mask = ids[:max_length], mask[:max_length]
    return {"input_ids": ids, "assistant_masks": mask, "length": len(ids)}


def tokenize_dataset(tokenizer, examples: Sequence[ChatExample], max_length: int | None = None):
    """A `datasets.Dataset` of tokenized examples; examples left with no trainable token
    after truncation are dropped."""
    from datasets import Dataset

    rows = [tokenize_example(tokenizer, ex, max_length) for ex in examples]
    return Dataset.from_list([row for row in rows if any(row["assistant_masks"])])
