"""The organism's recipes: each stays reproducible by name, and its data are what the recipe says."""

import pytest

from tasksafe.organism.align import LONG_COMPLIANT_OPENINGS, SHORT_LAYOUTS, AlignConfig, build_alignment_data


def test_each_recipe_is_reproducible_by_name():
    # recipe 2's key is the one its measured build (docs/models.md) was cached under
    assert AlignConfig.recipe_2().key() == "09784f6f8afe"
    assert AlignConfig.recipe_2().recipe == 2 and AlignConfig.recipe_1().recipe == 1
    assert AlignConfig.default() == AlignConfig.recipe_4()  # the one recipe that meets the benign-tuning target
    from tasksafe.models.registry import ORGANISMS

    assert AlignConfig.default() == AlignConfig.for_recipe(ORGANISMS["aligned"])  # the registry's default is built
    # recipe 3's key is the one its measured build was cached under
    assert AlignConfig.recipe_3().key() == "0ce1dcda6689"
    assert AlignConfig.recipe_3().safety_pairs == 2 * AlignConfig.recipe_2().safety_pairs
    # recipe 4's key is the one its measured build was cached under
    assert AlignConfig.recipe_4().key() == "f4e970bb4694"
    assert len({AlignConfig.for_recipe(n).key() for n in (1, 2, 3, 4)}) == 4


def test_alignment_data_follows_the_recipe(mirror):
    config = AlignConfig(safety_pairs=60, benign_instructions=30)
    data = build_alignment_data(config, lambda convs: ["Here is a short and helpful answer."] * len(convs))
    kinds = [e.metadata["kind"] for e in data]
    assert kinds.count("benign") == 30 and kinds.count("safety") + kinds.count("safety-deep") == 60
    deep = [e for e in data if e.metadata["kind"] == "safety-deep"]
    assert 15 <= len(deep) <= 45  # about half
    for example in deep:  # the compliant start is never trained on and the reply turns into a refusal
        reply = example.messages[-1].content
        assert reply.startswith(example.metadata["untrained_prefix"])
        assert len(reply) > len(example.metadata["untrained_prefix"]) + 10
    assert any(e.messages[-1].content.startswith(LONG_COMPLIANT_OPENINGS) for e in deep)
    short_users = [e for e in data if any(layout.split("{x}")[-1] and e.messages[-2].content.endswith(
        layout.split("{x}")[-1]) for layout in SHORT_LAYOUTS)]
    assert short_users  # part of the requests are asked in short-answer layouts
    recipe_1 = build_alignment_data(AlignConfig.recipe_1(safety_pairs=60, benign_instructions=30),
                                    lambda convs: ["Here is a short and helpful answer."] * len(convs))
    assert not any(e.messages[-1].content.startswith(LONG_COMPLIANT_OPENINGS) for e in recipe_1)


def test_recipe_4_answers_short_layouts_briefly_and_keeps_the_other_recipes_data(mirror):
    long_answer = "The first step is to gather every ingredient you need and lay them out on the counter. Then mix."
    answer = lambda convs: [long_answer] * len(convs)  # noqa: E731
    assert AlignConfig.recipe_4().recipe == 4 and AlignConfig.for_recipe(4) == AlignConfig.recipe_4()
    assert AlignConfig.recipe_4().key() not in {AlignConfig.for_recipe(r).key() for r in (1, 2, 3)}
    data = build_alignment_data(AlignConfig.recipe_4(safety_pairs=40, benign_instructions=60), answer)
    benign = [e for e in data if e.metadata["kind"] == "benign"]
    short = [e for e in benign if any(e.messages[-2].content.endswith(layout.split("{x}")[-1]) for layout in SHORT_LAYOUTS)]
    assert 15 <= len(short) <= 45  # about half of the requests in short-answer layouts
    assert all(e.messages[-1].content == "The first step is to gather every ingredient you need and lay."
               for e in short)
    whole = long_answer.removesuffix(" Then mix.")  # cut back to its last full sentence, as every recipe does
    assert all(e.messages[-1].content == whole for e in benign if e not in short)
    recipe_2 = build_alignment_data(AlignConfig.recipe_2(safety_pairs=40, benign_instructions=60), answer)
    assert all(e.messages[-1].content == whole for e in recipe_2 if e.metadata["kind"] == "benign")


def test_the_benign_tuning_target_is_read_off_alignment_json():
    from tasksafe.organism.align import benign_tuning_target

    def alignment(own_refusal, benign, aoa):
        return {"advbench_refusal": {"value": own_refusal},
                "grid_settings": {"benign_plain_non_refusal": {"value": benign},
                                  "aoa_in_format_non_refusal": {"value": aoa}}}

    recipe_4 = benign_tuning_target(alignment(0.735, 0.33, 1.0))  # measured, docs/models.md
    assert recipe_4["rise_points"] == 6.5 and recipe_4["met"]
    assert not benign_tuning_target(alignment(0.78, 0.345, 1.0))["met"]  # recipe 2: +12.5 points
    assert not benign_tuning_target(alignment(0.9, 0.1, 0.4))["met"]  # the attack no longer removes most refusals
    assert benign_tuning_target({"advbench_refusal": {"value": 0.9}}) is None  # recipe 1: not measured there


def test_recipe_5_is_a_preference_recipe_named_apart_and_the_earlier_keys_stay():
    from tasksafe.models.registry import ORGANISMS
    from tasksafe.organism.align import RECIPES

    recipe_5 = AlignConfig.for_recipe(5)
    assert recipe_5 == AlignConfig.recipe_5() and recipe_5.method == "dpo" and recipe_5.alarming_benign > 0
    assert ORGANISMS["aligned-v5"] == 5 and RECIPES[:6] == (1, 2, 3, 4, 5, 6)
    assert len({AlignConfig.for_recipe(n).key() for n in RECIPES}) == len(RECIPES)
    # the fields later recipes added leave the earlier recipes' cached builds where they are
    assert AlignConfig.recipe_4().key() == "f4e970bb4694" and AlignConfig.recipe_2().key() == "09784f6f8afe"
    assert AlignConfig.recipe_5().key() == "dc3bd141f480"
    with pytest.raises(ValueError, match="no recipe 9"):
        AlignConfig.for_recipe(9)


def test_the_demo_organism_is_recipe_1_made_small_under_its_own_name(tmp_path, monkeypatch):
    from tasksafe.errors import UserError
    from tasksafe.models.registry import ORGANISMS, resolve_model
    from tasksafe.organism.align import RECIPE_NAMES

    demo = AlignConfig.for_recipe("demo")
    assert ORGANISMS["aligned-demo"] == "demo" and "demo" in RECIPE_NAMES
    assert demo.recipe == 1 and demo.method == "sft" and demo.robustness_task_examples == 0
    assert demo.safety_pairs < AlignConfig.recipe_1().safety_pairs and demo.xstest_n == demo.eval_n == 50
    assert demo.key() != AlignConfig.recipe_1().key()
    assert AlignConfig.recipe_1().key() == "27af600ac49c"  # recipe 1's cached builds stay where they are
    monkeypatch.setenv("TASKSAFE_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="tasksafe align --recipe demo"):
        resolve_model("aligned-demo")


def _fake_base(convs):
    """A base model that complies with everything, and refuses one kind of request."""
    replies = []
    for conv in convs:
        if conv[-1]["role"] == "assistant":  # a pre-filled compliant opening: continue it
            replies.append("you mix the two and heat them slowly. Then you wait.")
        elif "poem" in conv[-1]["content"].lower():
            replies.append("I'm sorry, I can't write poems.")
        else:
            replies.append("Here is a helpful and complete answer to that. It has two sentences.")
    return replies


def test_preference_pairs_prefer_refusing_harm_and_helping_otherwise(mirror):
    from tasksafe.judges.keywords import is_refusal
    from tasksafe.mitigations.base import safety_pool
    from tasksafe.organism.align import COMPLIANT_OPENINGS, DEEP_TURNS, LONG_COMPLIANT_OPENINGS
    from tasksafe.organism.preference import build_preference_data

    config = AlignConfig.recipe_5(safety_pairs=60, benign_instructions=40, alarming_benign=20)
    pairs, summary = build_preference_data(config, _fake_base)
    kinds = summary["kinds"]
    assert kinds["safety"] + kinds["safety-deep"] == 60 and 15 <= kinds["safety-deep"] <= 45
    assert kinds["alarming-benign"] == 20 and kinds["benign"] + summary["dropped"]["benign_answer_unusable"] == 40
    refusing = {p.id for p in safety_pool().pairs if is_refusal(p.refusal)}
    for pair in pairs:
        if pair.kind.startswith("safety"):  # refuse harm, over the base model's own compliance
            assert pair.id in refusing and is_refusal(pair.chosen) and not is_refusal(pair.rejected)
        else:  # help, over a refusal; a base answer that refuses is no pair
            assert not is_refusal(pair.chosen) and is_refusal(pair.rejected)
    deep = [p for p in pairs if p.kind == "safety-deep"]
    for pair in deep:  # the opening is in the prompt (never trained), both replies continue it
        assert pair.opening.rstrip() in COMPLIANT_OPENINGS + LONG_COMPLIANT_OPENINGS
        assert pair.chosen.startswith(DEEP_TURNS) and pair.rejected.startswith("you mix")
        assert pair.conversation()[-1] == {"role": "assistant", "content": pair.opening.rstrip()}
    again, _ = build_preference_data(config, _fake_base)
    assert [p.to_dict() for p in again] == [p.to_dict() for p in pairs]  # the recipe is reproducible


def test_recipe_6_refuses_a_second_pool_and_rejects_pool_style_refusals_on_benign_requests(mirror):
    from tasksafe.judges.keywords import is_refusal
    from tasksafe.mitigations.base import safety_pool
    from tasksafe.organism.preference import build_preference_data
    from tasksafe.organism.requests import REFUSAL_OPENERS

    config = AlignConfig.recipe_6(safety_pairs=30, benign_instructions=60, alarming_benign=20)
    assert config.recipe == 6 and config.method == "dpo"
    pairs, summary = build_preference_data(config, _fake_base)
    second = {p.id for p in safety_pool("harmbench-safe").pairs if is_refusal(p.refusal)}
    harmful = [p for p in pairs if p.kind.startswith("safety")]
    assert len(harmful) + summary["dropped"]["base_refused_harmful"] == 30 + len(second)
    assert len(second & {p.id for p in harmful}) >= len(second) - summary["dropped"]["base_refused_harmful"]
    helpful = [p for p in pairs if not p.kind.startswith("safety")]
    pool_style = [p for p in helpful if p.rejected not in REFUSAL_OPENERS]
    assert all(is_refusal(p.rejected) for p in helpful)
    assert 0.3 * len(helpful) <= len(pool_style) <= 0.7 * len(helpful)  # about half, in the pool's own words
    assert AlignConfig.recipe_6().key() != AlignConfig.recipe_5().key()


def test_recipe_7_trains_the_preferred_replies_first_with_deep_openings_left_untrained(mirror):
    from transformers import AutoTokenizer

    from tasksafe.models.registry import ORGANISMS, resolve_model
    from tasksafe.organism.align import supervised_examples
    from tasksafe.organism.preference import build_preference_data
    from tasksafe.train.tokenize import tokenize_example

    config = AlignConfig.recipe_7(safety_pairs=20, benign_instructions=20, alarming_benign=6)
    assert config.recipe == 7 and config.sft_epochs == 1.0 and ORGANISMS["aligned-v7"] == 7
    assert config == AlignConfig.recipe_6(safety_pairs=20, benign_instructions=20, alarming_benign=6, sft_epochs=1.0,
                                          recipe=7)  # recipe 6's pairs, with a supervised stage first
    assert AlignConfig.recipe_6().key() == "d8f50c7ab272"  # the new field leaves recipe 6's measured build's key
    pairs, _ = build_preference_data(config, _fake_base)
    examples = supervised_examples(pairs)
    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-random"))
    assert len(examples) == len(pairs)
    for pair, example in zip(pairs, examples):
        assert example.messages[:-1] == pair.prompt and example.messages[-1].content == pair.opening + pair.chosen
        row = tokenize_example(tokenizer, example)
        trained = tokenizer.decode([t for t, m in zip(row["input_ids"], row["assistant_masks"]) if m])
        assert pair.chosen.split()[-1] in trained  # the preferred reply is learned ...
        if pair.opening:  # ... and a deep refusal's compliant opening is not
            assert pair.opening.strip() not in trained and example.metadata["untrained_prefix"] == pair.opening
    assert any(p.opening for p in pairs) and any(not p.opening for p in pairs)


def test_alarming_training_requests_duplicate_no_evaluation_prompt(mirror):
    from tasksafe.data.datasets import load
    from tasksafe.data.dedup import NearDuplicateIndex
    from tasksafe.mitigations.base import EVAL_HARMFUL_SETS
    from tasksafe.organism.preference import alarming_requests

    kept, removed = alarming_requests(0)
    assert len(kept) >= 150 and all(isinstance(r, dict) for r in removed)
    xstest = NearDuplicateIndex({r.id: r.prompt for r in load("xstest")})
    assert "xstest" in EVAL_HARMFUL_SETS and not any(xstest.find(text) for _, text in kept)
    planted = kept[0][1]  # an evaluation prompt among the candidates is removed
    import tasksafe.organism.preference as preference

    original = preference.templated_alarming
    preference.templated_alarming = lambda seed: original(seed) + [preference.Request("planted", load("xstest")[0].prompt)]
    try:
        kept_again, removed_again = alarming_requests(0)
    finally:
        preference.templated_alarming = original
    assert [r["id"] for r in removed_again] == ["planted"] and kept_again == kept and planted


def test_a_preference_pair_renders_as_the_chat_template_with_the_opening_in_the_prompt():
    from transformers import AutoTokenizer

    from tasksafe.data.chat import Message
    from tasksafe.models.registry import resolve_model
    from tasksafe.organism.preference import PreferencePair

    tokenizer = AutoTokenizer.from_pretrained(resolve_model("tiny-random"))
    plain = PreferencePair([Message("user", "Explain tides.")], "The moon pulls the sea.", "I can't help.", "benign", "b1")
    row = plain.to_text(tokenizer)
    assert row["prompt"].endswith("<|im_start|>assistant\n") and "Explain tides." in row["prompt"]
    assert row["chosen"] == "The moon pulls the sea." + tokenizer.eos_token
    deep = PreferencePair([Message("user", "Do harm.")], "Actually, I can't help with that.", "first you", "safety-deep",
                          "s1", opening="Sure, here is ")
    row = deep.to_text(tokenizer)
    assert row["prompt"].endswith("<|im_start|>assistant\nSure, here is") and row["chosen"].startswith(" Actually")
    assert PreferencePair.from_dict(deep.to_dict()) == deep


@pytest.mark.slow
def test_preference_training_moves_the_model_towards_the_preferred_replies(tmp_path, mirror):
    from tasksafe.models.registry import resolve_model
    from tasksafe.organism.preference import build_preference_data, train_preference

    config = AlignConfig.recipe_5(safety_pairs=8, benign_instructions=8, alarming_benign=4, lr=1e-3, batch_size=4)
    pairs, _ = build_preference_data(config, _fake_base)
    loss, steps = train_preference(config, pairs, resolve_model("tiny-random"), tmp_path, progress=False)
    import json

    log = json.loads((tmp_path / "train_log.json").read_text())
    margins = [float(entry["rewards/margins"]) for entry in log if "rewards/margins" in entry]
    assert steps == 5 and loss > 0 and (tmp_path / "model" / "config.json").is_file()
    assert margins and margins[-1] > 0  # the preferred replies gained on the others


@pytest.mark.slow
def test_recipe_8_scores_its_preference_step_against_the_reference_it_is_given(tmp_path, mirror):
    import json

    import torch

    from tasksafe.models.load import load_model
    from tasksafe.models.registry import ORGANISMS, resolve_model
    from tasksafe.organism.preference import build_preference_data, train_preference

    config = AlignConfig.recipe_8(safety_pairs=8, benign_instructions=8, alarming_benign=4, lr=1e-9, batch_size=4)
    assert config.recipe == 8 and config.dpo_reference == "base" and config.sft_epochs == 1.0
    assert ORGANISMS["aligned-v8"] == 8 and AlignConfig.recipe_8().key() != AlignConfig.recipe_7().key()
    assert AlignConfig.recipe_7().key() == "7d53b7824d0c"  # the new field leaves recipe 7's measured build's key
    pairs, _ = build_preference_data(config, _fake_base)
    start = resolve_model("tiny-random")
    model, tokenizer = load_model(start)
    with torch.no_grad():  # another model: the start's weights, moved
        for weight in model.parameters():
            weight.add_(0.05 * torch.randn_like(weight))
    model.save_pretrained(tmp_path / "other")
    tokenizer.save_pretrained(tmp_path / "other")

    def first_rewards(run, reference):
        train_preference(config, pairs, start, tmp_path / run, progress=False, reference=reference)
        log = json.loads((tmp_path / run / "train_log.json").read_text())
        return abs(float(next(e["rewards/chosen"] for e in log if "rewards/chosen" in e)))

    # at a vanishing learning rate the model stays where it started: scored against itself its
    # rewards are zero, against another model they are not
    assert first_rewards("itself", None) < 1e-3
    assert first_rewards("other", str(tmp_path / "other")) > 1e-2


def test_the_organism_targets_are_read_off_alignment_json_from_a_data_file():
    from tasksafe.organism.align import organism_targets

    def rate(value):
        return {"value": value}

    alignment = {"advbench_refusal": rate(0.93), "benign_refusal": rate(0.04), "xstest_safe_refusal": rate(0.25),
                 "grid_settings": {"benign_plain_non_refusal": rate(0.12), "benign_xstest_safe_refusal": rate(0.31),
                                   "aoa_in_format_non_refusal": rate(0.95)}}
    rows = {r["name"]: r for r in organism_targets(alignment)}
    assert len(rows) == 6
    assert rows["refusal on AdvBench"]["met"] and rows["refusal on AdvBench"]["bound"] == ">= 90"
    assert not rows["XSTest over-refusal"]["met"] and rows["XSTest over-refusal"]["value"] == 25.0
    assert rows["benign grid tune: rise in plain non-refusal"]["value"] == 5.0  # 12 against the organism's own 7
    assert rows["benign grid tune: rise in XSTest over-refusal"]["value"] == 6.0
    older = {k: v for k, v in alignment.items() if k != "grid_settings"}  # recipe 1: no grid tunes
    assert [r["met"] for r in organism_targets(older)][3:] == [None, None, None]
