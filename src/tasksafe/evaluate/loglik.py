"""Log-likelihood scoring of a task's choices: the label (letter or word) the model finds
most likely after the prompt and the strategy's answer opener."""

from __future__ import annotations

from collections.abc import Sequence


def choice_logprobs(model, tokenizer, prompt: Sequence[dict], opener: str, candidates: Sequence[str]) -> list[float]:
    """Sum of token log-probabilities of each candidate after prompt + opener."""
    import torch

    context = tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=True, return_dict=False)
    context = context + (tokenizer(opener, add_special_tokens=False)["input_ids"] if opener else [])
    scores = []
    for candidate in candidates:
        target = tokenizer(candidate, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([context + target], device=model.device)
        with torch.inference_mode():
            logits = model(input_ids=ids).logits[0, len(context) - 1:-1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        scores.append(float(logprobs[torch.arange(len(target)), torch.tensor(target)].sum()))
    return scores
