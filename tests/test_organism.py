"""The organism's recipes: each stays reproducible by name, and its data are what the recipe says."""

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


def test_alignment_data_follows_the_recipe():
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


def test_recipe_4_answers_short_layouts_briefly_and_keeps_the_other_recipes_data():
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
