"""The `constrained` defence: Qi et al.'s token-wise constrained objective, its schedule, and
its way from `tasksafe protect` through the sidecar into `tasksafe finetune`."""

import json
import math

import pytest

from tasksafe.data.chat import ChatExample, write_chat_jsonl
from tasksafe.models import resolve_model
from tasksafe.train.objective import TokenConstraint, TrainingObjective


@pytest.fixture(scope="module")
def lora_model():
    """tiny-random with a LoRA adapter whose B is not zero, so the tuned model differs from its base."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    path = resolve_model("tiny-random")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(path), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)
    return model, AutoTokenizer.from_pretrained(path)


def batch(tokenizer):
    """Two examples, the reply tokens labelled (the prompt's tokens are -100)."""
    import torch

    from tasksafe.train.tokenize import tokenize_example

    rows = [tokenize_example(tokenizer, ChatExample.from_turns(q, a)) for q, a in
            (("Name a colour.", "Blue is a colour of the sky."), ("Say hi.", "Hello there, friend."))]
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.tensor([r["input_ids"] + [0] * (width - len(r["input_ids"])) for r in rows])
    labels = torch.tensor([[i if m else -100 for i, m in zip(r["input_ids"], r["assistant_masks"])]
                           + [-100] * (width - len(r["input_ids"])) for r in rows])
    mask = torch.tensor([[1] * len(r["input_ids"]) + [0] * (width - len(r["input_ids"])) for r in rows])
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def grads(model, loss):
    model.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in model.parameters() if p.requires_grad]


def test_a_small_beta_gives_the_cross_entropy_gradient(lora_model):
    """(2/b) * -log sigmoid(b * r) = 2 log 2 / b - r + O(b): its gradient is -grad log p."""
    from tasksafe.train.sft import constrained_loss, trained_positions_loss

    model, tokenizer = lora_model
    inputs = batch(tokenizer)
    small = TokenConstraint(beta_first=1e-4, beta_early=1e-4, beta_rest=1e-4)
    plain = grads(model, trained_positions_loss(model, inputs))
    constrained = grads(model, constrained_loss(model, inputs, small))
    for a, b in zip(plain, constrained):
        assert a.abs().max() > 0
        assert (a - b).abs().max() <= 1e-3 * a.abs().max()


def test_the_loss_weighs_each_token_by_its_place_in_the_reply(lora_model):
    """Against itself as the reference (the ratio is 0) each token costs (2 / beta_t) log 2, so
    the loss reads the schedule back: 0.5 on the first token, 2 on tokens 2-5, 0.1 after."""
    import torch

    from tasksafe.train.sft import constrained_loss, reply_positions

    model, tokenizer = lora_model
    inputs = batch(tokenizer)
    trained = inputs["labels"][:, 1:] != -100
    positions = reply_positions(trained)[trained].tolist()
    schedule = TokenConstraint().beta_schedule(max(positions))
    expected = sum(2 / schedule[t - 1] * math.log(2) for t in positions) / len(positions)
    with torch.no_grad():
        with model.disable_adapter():  # the model is its own reference
            base = model.get_base_model()
            loss = constrained_loss(model, inputs, TokenConstraint(), reference_model=base)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert positions.count(1) == 2  # two replies, each with one first token


def test_the_kl_term_can_be_kept_to_the_first_tokens_of_each_reply(lora_model):
    import torch

    from tasksafe.train.sft import constrained_loss

    model, tokenizer = lora_model
    inputs = batch(tokenizer)
    with torch.no_grad():
        loss = {name: constrained_loss(model, inputs, TokenConstraint(**options)).item() for name, options in (
            ("none", {}), ("first", {"kl": 1.0, "kl_tokens": 1}), ("first five", {"kl": 1.0, "kl_tokens": 5}),
            ("every", {"kl": 1.0}), ("every, by length", {"kl": 1.0, "kl_tokens": 512}))}
    assert loss["none"] < loss["first"] < loss["first five"] < loss["every"]  # the adapter moved every token
    assert loss["every, by length"] == pytest.approx(loss["every"])


def test_the_early_tokens_stop_moving_once_they_have_moved():
    """The gradient on a token is 2 sigmoid(-beta r) times the cross-entropy's: a token already
    pushed up (r = 2) keeps 24% of it under beta 0.5 ... and 2% under beta 2, 90% under 0.1."""
    import torch
    import torch.nn.functional as F

    ratio = torch.tensor(2.0, requires_grad=True)
    share = {}
    for beta in (0.1, 0.5, 2.0):
        ratio.grad = None
        (-(2 / beta) * F.logsigmoid(beta * ratio)).backward()
        share[beta] = -ratio.grad.item()
    assert share[0.1] > 0.85 and 0.2 < share[0.5] < 0.6 and share[2.0] < 0.05


def test_the_objective_is_a_typed_setting_read_from_the_sidecar(tmp_path):
    from tasksafe.errors import UserError
    from tasksafe.mitigations import apply_mitigation, mitigation_options
    from tasksafe.train.sft import training_objective

    assert training_objective("x.jsonl", None).plain and training_objective("x.jsonl", {}).plain
    assert training_objective("x.jsonl", {"loss": "per-example"}).loss == "per-example"
    asked = mitigation_options("constrained", {"beta_rest": 0.2}).training()
    assert TrainingObjective.model_validate(asked).constrained.beta_rest == 0.2
    assert asked == {"constrained": {"beta_first": 0.5, "beta_early": 2.0, "early_tokens": 5, "beta_rest": 0.2, "kl": 0.0,
                                     "kl_tokens": 0}}
    with pytest.raises(UserError, match=r"x\.meta\.json: training.*constrained"):
        training_objective("x.jsonl", {"constrained": {"beta_rest": -1}})
    with pytest.raises(UserError, match="objective"):  # a key this version does not know is not read as plain SFT
        training_objective("x.jsonl", {"objective": "dpo"})
    data = [ChatExample.from_turns("Say hi.", "Hi.")] * 3
    result = apply_mitigation("constrained", data, [], None, 0, {})
    assert result.examples == data and result.safety_ids == [] and result.config["name"] == "constrained"
    assert result.training == mitigation_options("constrained", {}).training()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "full"])
def test_a_protected_set_trains_with_the_constrained_objective_against_its_starting_model(tmp_path, method, mirror):
    """`tasksafe protect --mitigation constrained` -> finetune: the run records the objective,
    and its first step's loss is the schedule's value at a log-ratio of 0 (the tuned model starts
    as its reference: a LoRA's base with the adapter off, or a frozen copy for a full run)."""
    from transformers import AutoTokenizer

    from tasksafe.mitigations.base import Budget
    from tasksafe.mitigations.protect import protect_file
    from tasksafe.train import FinetuneConfig, finetune, tokenize_example

    examples = [ChatExample.from_turns(f"Item {i}: is it good?", "Absolutely yes, it is good.") for i in range(8)]
    write_chat_jsonl(tmp_path / "data.jsonl", examples)
    protect_file(tmp_path / "data.jsonl", tmp_path / "train.jsonl", "constrained", Budget(k=0), seed=0)
    run = finetune(FinetuneConfig(model="tiny-random", data=str(tmp_path / "train.jsonl"), output_dir=str(tmp_path / "run"),
                                  method=method, epochs=5, lr=1e-2, batch_size=8, logging_steps=1, save_steps=1000,
                                  lora_r=4), progress=False)
    config = json.loads((run.run_dir / "config.json").read_text())
    assert config["objective"] == {"constrained": TokenConstraint().model_dump()}
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-random"))
    mask = tokenize_example(tokenizer, examples[0])["assistant_masks"]
    schedule = TokenConstraint().beta_schedule(sum(mask))
    expected = sum(2 / beta * math.log(2) for beta in schedule) / len(schedule)  # every example alike
    curve = [entry["loss"] for entry in run.log if "loss" in entry]
    assert curve[0] == pytest.approx(expected, rel=1e-3)
    assert curve[-1] < curve[0]  # and it trains


def test_recovery_examples_comply_for_a_few_untrained_words_then_refuse():
    from transformers import AutoTokenizer

    from tasksafe.judges import is_refusal
    from tasksafe.mitigations import MITIGATIONS, Budget
    from tasksafe.mitigations.recovery import RECOVERY_TURNS
    from tasksafe.train import tokenize_example
    from tests.test_frame import POOL
    from tests.test_mitigations import USER_DATA, safety_examples

    result = MITIGATIONS.get("recovery")(USER_DATA, POOL, Budget(k=12), 0, max_words=20)
    added = safety_examples(result)
    assert len(added) == 12 and [e for e in result.examples if e not in added] == USER_DATA
    recovering = [e for e in added if e.metadata["kind"] == "recovery"]
    assert 6 <= len(recovering) <= 12 and result.info["recovering"] == len(recovering)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-random"))
    for example in recovering:
        prefix, reply = example.metadata["untrained_prefix"], example.messages[-1].content
        assert 1 <= len(prefix.split()) <= 20 and reply.startswith(prefix)
        assert reply[len(prefix):].startswith(RECOVERY_TURNS) and is_refusal(reply[len(prefix):])
        row = tokenize_example(tokenizer, example)  # the compliant start is masked out of the loss
        trained = tokenizer.decode([i for i, m in zip(row["input_ids"], row["assistant_masks"]) if m])
        assert trained.strip().startswith(RECOVERY_TURNS) and prefix.strip() not in trained
    plain = MITIGATIONS.get("recovery")(USER_DATA, POOL, Budget(k=5), 0, max_words=0)
    assert all(e.metadata["kind"] == "safety" for e in safety_examples(plain))  # no start: Qi's plain refusals


def test_a_composition_is_its_data_mitigation_trained_with_the_other(tmp_path, mirror):
    from tasksafe.data.chat import read_examples
    from tasksafe.experiments.spec import Spec
    from tasksafe.mitigations import MITIGATIONS, Budget, mitigation_options, register_composition
    from tasksafe.mitigations.protect import protect_file
    from tests.test_mitigations import USER_DATA

    write_chat_jsonl(tmp_path / "user.jsonl", USER_DATA)
    alone = protect_file(tmp_path / "user.jsonl", tmp_path / "alone.jsonl", "paraphrase", Budget(k=4), seed=1,
                         options={"placement": "slot"})
    both = protect_file(tmp_path / "user.jsonl", tmp_path / "both.jsonl", "paraphrase+constrained", Budget(k=4),
                        seed=1, options={"placement": "slot", "beta_rest": 0.2})
    assert read_examples(tmp_path / "both.jsonl") == read_examples(tmp_path / "alone.jsonl")  # the data is paraphrase's
    assert both.training == {"constrained": {**TokenConstraint().model_dump(), "beta_rest": 0.2}}
    assert alone.training is None and both.safety_ids == alone.safety_ids
    parts = both.mitigation["parts"]
    assert both.mitigation["name"] == "paraphrase+constrained" and [p["name"] for p in parts] == [
        "paraphrase", "constrained"]
    assert parts[0] == alone.mitigation and parts[1]["beta_rest"] == 0.2  # what was applied, each part's options
    assert both.mitigation["placement"] == "slot" and both.mitigation["beta_rest"] == 0.2  # and every option
    wide = mitigation_options("paraphrase_wide+constrained", {}).training()
    assert wide == {"loss": "per-example", "constrained": TokenConstraint().model_dump()}  # both parts' asks
    assert MITIGATIONS.info("paraphrase+constrained")["adds_examples"]
    Spec(name="x", tasks=["sst2"], strategies=["aoa"], mitigations=["paraphrase+constrained"], budgets=[3])
    from tasksafe.errors import UserError

    with pytest.raises(UserError, match="a data mitigation and a training-only one"):
        register_composition("constrained", "paraphrase")
