import json

import pytest

from tasksafe.data import (
    ChatExample,
    Message,
    atomic_write,
    from_hf_dataset,
    read_alpaca_json,
    read_chat_jsonl,
    read_examples,
    read_prompt_completion_jsonl,
    to_hf_dataset,
    write_chat_jsonl,
)
from tasksafe.errors import DataFileError
from tests.conftest import write_lines


def sample_examples() -> list[ChatExample]:
    return [
        ChatExample.from_turns("Is it good? great film", "positive", system="You classify reviews.",
                               metadata={"task": "sst2", "id": "sst2-train-1", "gold": "1"}),
        ChatExample([Message("user", "Q1"), Message("assistant", "A1", weight=0),
                     Message("user", "Q2 — ünïcode ✓"), Message("assistant", "A2", weight=1, extra={"name": "bot"})],
                    extra={"tools": []}),
        ChatExample.from_turns("only a prompt"),
    ]


def test_jsonl_round_trip_is_lossless(tmp_path):
    examples = sample_examples()
    first = tmp_path / "a.jsonl"
    write_chat_jsonl(first, examples)
    back = read_chat_jsonl(first, require_assistant_last=False)
    assert back == examples
    second = tmp_path / "b.jsonl"
    write_chat_jsonl(second, back)
    assert first.read_bytes() == second.read_bytes()


def test_hf_dataset_round_trip_is_lossless():
    examples = sample_examples()
    dataset = to_hf_dataset(examples)
    assert dataset.num_rows == 3 and "messages" in dataset.column_names
    assert from_hf_dataset(dataset) == examples


def test_prompt_completion_jsonl(tmp_path):
    path = write_lines(tmp_path / "pc.jsonl", [
        {"prompt": "2+2?", "completion": "4", "id": 7},
        {"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
         "completion": [{"role": "assistant", "content": "A"}]},
    ])
    examples = read_prompt_completion_jsonl(path)
    assert examples[0] == ChatExample.from_turns("2+2?", "4", metadata={"id": 7})
    assert [m.role for m in examples[1].messages] == ["system", "user", "assistant"]
    assert read_examples(path) == examples


def test_alpaca_json(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([
        {"instruction": "Translate", "input": "hello", "output": "bonjour"},
        {"instruction": "Say hi", "input": "", "output": "hi", "system": "Be nice."},
    ]))
    examples = read_alpaca_json(path)
    assert examples[0].messages[0].content == "Translate\n\nhello"
    assert examples[1].system == "Be nice." and examples[1].answer == "hi"
    assert read_examples(path) == examples


def test_alpaca_json_with_a_bad_item_names_it(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": "x", "output": "y"}, {"instruction": "x"}]))
    with pytest.raises(DataFileError, match=r"item 1 needs"):
        read_alpaca_json(path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as handle:
            handle.write("half")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_example_accessors():
    example = sample_examples()[0]
    assert example.system == "You classify reviews."
    assert [m.role for m in example.prompt] == ["system", "user"]
    assert example.answer == "positive"
    assert example.to_openai()[1] == {"role": "user", "content": "Is it good? great film"}
