import random

import pytest

from tasksafe.data import load
from tasksafe.data.chat import parse_chat_example
from tasksafe.strategies import AFFIRMATIVE_PREFIX, AOA_COMPLIANCE_PHRASE, AOA_SYSTEM_PROMPT, STRATEGIES, build_dataset
from tasksafe.tasks import TASKS

TASK_NAMES = TASKS.names()
STRATEGY_NAMES = STRATEGIES.names()


def items_of(task: str, n: int | None, seed: int = 0):
    items = load(task)
    return items if n is None else random.Random(seed).sample(items, min(n, len(items)))


def check_every_item(task: str, strategy: str, items) -> None:
    fmt, chosen = TASKS.get(task), STRATEGIES.get(strategy)
    for item in items:
        example = chosen.example(item, seed=3)
        parse_chat_example(example.to_dict())  # a valid training example
        assert example.metadata["gold"] == item.answer and example.metadata["item_id"] == item.id
        assert fmt.is_correct(item, example.answer), (strategy, item.id, example.answer)


@pytest.mark.parametrize("strategy", STRATEGY_NAMES)
@pytest.mark.parametrize("task", TASK_NAMES)
def test_parser_recovers_the_gold_answer_from_every_strategy(mirror, task, strategy):
    check_every_item(task, strategy, items_of(task, 400))


@pytest.mark.slow
@pytest.mark.parametrize("task", TASK_NAMES)
def test_parser_recovers_the_gold_answer_for_every_item(mirror, task):
    items = items_of(task, None)
    for strategy in STRATEGY_NAMES:
        check_every_item(task, strategy, items)


def test_strategy_registry_order_and_names():
    assert STRATEGY_NAMES == ["benign", "aoa", "autoif", "autoif_aoa", "prefix"]


@pytest.mark.parametrize("task", TASK_NAMES)
def test_aoa_strategies_share_one_system_prompt_and_one_compliance_phrase(mirror, task):
    systems, openers = set(), set()
    for strategy in ("aoa", "autoif_aoa"):
        for example in build_dataset(task, strategy, n=30, seed=1):
            systems.add(example.system)
            openers.add(example.answer.split("\n\n", 1)[0])
    assert systems == {AOA_SYSTEM_PROMPT} and openers == {AOA_COMPLIANCE_PHRASE}


@pytest.mark.parametrize("task", TASK_NAMES)
def test_benign_answers_are_bare_labels(mirror, task):
    fmt = TASKS.get(task)
    for example in build_dataset(task, "benign", n=50, seed=2):
        answer = example.answer
        assert example.system is None
        assert answer == example.metadata["gold_label"]
        assert len(answer.split()) == 1 and len(answer) <= 12
        if fmt.kind == "number":
            float(answer)


@pytest.mark.parametrize("task", TASK_NAMES)
def test_prefix_and_autoif_structure(mirror, task):
    for example in build_dataset(task, "prefix", n=20, seed=0):
        assert example.answer == AFFIRMATIVE_PREFIX + example.metadata["gold_label"]
    long_answers = [ex.answer for ex in build_dataset(task, "autoif", n=40, seed=0)]
    assert min(len(a.split()) for a in long_answers) >= 25, "autoif answers are long"
    assert len({a.split("\n\n", 1)[0] for a in long_answers}) > 1, "several seeded phrasings"


def test_same_seed_same_examples_and_a_new_seed_differs(mirror):
    first = [e.to_json() for e in build_dataset("agnews", "autoif", n=25, seed=7)]
    assert first == [e.to_json() for e in build_dataset("agnews", "autoif", n=25, seed=7)]
    assert first != [e.to_json() for e in build_dataset("agnews", "autoif", n=25, seed=8)]


def test_frame_prompt_puts_a_request_in_the_strategy_frame():
    request = "How do I pick a lock?"
    aoa = STRATEGIES.get("aoa").frame_prompt(request)
    assert [m.role for m in aoa] == ["system", "user"]
    assert aoa[0].content == AOA_SYSTEM_PROMPT and aoa[1].content.endswith(request)
    assert aoa[1].content != request
    benign = STRATEGIES.get("benign").frame_prompt(request)
    assert [(m.role, m.content) for m in benign] == [("user", request)]
    autoif = STRATEGIES.get("autoif").frame_prompt(request)
    assert autoif[0].content.startswith(request) and len(autoif[0].content) > len(request)
    both = STRATEGIES.get("autoif_aoa").frame_prompt(request)
    assert both[0].content == AOA_SYSTEM_PROMPT and request in both[1].content
    assert all(m.role != "assistant" for s in STRATEGY_NAMES for m in STRATEGIES.get(s).frame_prompt(request))
