"""The hf backend on tiny-random: batched greedy generation equals one-at-a-time."""

import pytest

from tasksafe.generate import GenerationParams, HFBackend

PROMPTS = [[{"role": "user", "content": text}] for text in
           ("hi", "Tell me a long story about a dragon who learns to read books in a library.", "2+2?",
            "What is the capital of France, and why is it famous?", "ok")]


@pytest.fixture(scope="module")
def backend():
    return HFBackend.from_name("tiny-random")


def test_batched_and_one_at_a_time_greedy_generation_agree(backend):
    params = GenerationParams(max_new_tokens=12)
    batched = backend.generate(PROMPTS, params)
    single = HFBackend(backend.model, backend.tokenizer, batch_size=1).generate(PROMPTS, params)
    assert batched == single
    assert all(isinstance(text, str) for text in batched)


def test_reference_model_generate_matches_the_backend(backend):
    import torch

    params = GenerationParams(max_new_tokens=8)
    ids = backend.tokenizer.apply_chat_template(PROMPTS[1], add_generation_prompt=True, return_tensors="pt",
                                                return_dict=True)
    with torch.inference_mode():
        out = backend.model.generate(**ids, max_new_tokens=8, do_sample=False,
                                     pad_token_id=backend.tokenizer.pad_token_id)
    expected = backend.tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert backend.generate([PROMPTS[1]], params) == [expected]


def test_automatic_batches_respect_the_token_budget(backend):
    auto = HFBackend(backend.model, backend.tokenizer, max_batch_tokens=100)
    batches = auto._batches([60, 10, 30, 40, 20])
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert batches[0][0] == 0  # longest first
    assert all(max([60, 10, 30, 40, 20][i] for i in b) * len(b) <= 100 or len(b) == 1 for b in batches)


def test_vllm_missing_is_one_clear_line_with_the_install_command():
    import importlib.util

    from tasksafe.errors import MissingDependencyError
    from tasksafe.generate.vllm_backend import VLLMBackend

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    with pytest.raises(MissingDependencyError, match=r"pip install 'tasksafe\[vllm\]'"):
        VLLMBackend("tiny-random")


def test_choice_log_likelihood_is_the_sum_of_the_label_token_log_probs(backend):
    import torch

    from tasksafe.evaluate.loglik import choice_logprobs

    prompt = [{"role": "user", "content": "Is this review positive? a fine film"}]
    scores = choice_logprobs(backend.model, backend.tokenizer, prompt, "Sure: ", ["negative", "positive"])
    tokenizer = backend.tokenizer
    context = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
    context += tokenizer("Sure: ", add_special_tokens=False)["input_ids"]
    target = tokenizer("positive", add_special_tokens=False)["input_ids"]
    with torch.inference_mode():
        logits = backend.model(input_ids=torch.tensor([context + target])).logits[0]
    expected = sum(torch.log_softmax(logits[len(context) - 1 + i], -1)[t].item() for i, t in enumerate(target))
    assert len(scores) == 2 and scores[1] == pytest.approx(expected, abs=1e-4)
