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


def test_complete_counts_the_prompt_and_the_reply_up_to_its_end_of_turn(backend):
    import torch

    params = GenerationParams(max_new_tokens=8)
    ran_out = backend.complete([PROMPTS[1]], params)[0]
    assert ran_out.text == backend.generate([PROMPTS[1]], params)[0]
    assert ran_out.prompt_tokens == len(backend.encode(PROMPTS[1]))
    assert (ran_out.completion_tokens, ran_out.stopped) == (8, False)  # tiny-random never ends its turn by itself
    # make the token it generates fourth an end of turn: the reply now stops there
    ids = torch.tensor([backend.encode(PROMPTS[1])])
    with torch.inference_mode():
        new = backend.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                                     pad_token_id=backend.tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
    config, original = backend.model.generation_config, backend.model.generation_config.eos_token_id
    config.eos_token_id = [original, new[3]] if isinstance(original, int) else [*original, new[3]]
    try:
        stopped = backend.complete([PROMPTS[1]], params)[0]
    finally:
        config.eos_token_id = original
    assert (stopped.completion_tokens, stopped.stopped) == (new.index(new[3]), True)


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_a_streamed_reply_is_the_same_reply_arriving_while_it_is_generated(temperature):
    from tasksafe.generate.base import GenerationParams
    from tasksafe.generate.hf import STREAM_AHEAD, Completion, HFBackend

    backend = HFBackend.from_name("tiny-random")
    steps = []
    backend.model.get_decoder().register_forward_hook(lambda *args: steps.append(1))
    conversation = [{"role": "user", "content": "Say something long."}]
    params = GenerationParams(max_new_tokens=40, temperature=temperature, seed=5)
    pieces, at_first = [], None
    for piece in backend.stream(conversation, params):
        if isinstance(piece, Completion):
            final = piece
            continue
        at_first = len(steps) if at_first is None else at_first
        pieces.append(piece)
    whole = backend.complete([conversation], params)[0]
    assert "".join(pieces).strip() == whole.text and final == whole
    assert len(pieces) > 1 and final.completion_tokens > STREAM_AHEAD + 2
    assert at_first <= STREAM_AHEAD + 2  # the first text came while the reply was still being generated
    stopped = backend.stream(conversation, params)
    next(stopped)
    stopped.close()  # a reader that goes away stops the generation
