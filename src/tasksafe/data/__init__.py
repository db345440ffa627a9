"""Data: chat examples and their files, canonical records, and the public dataset registry."""

from tasksafe.data.chat import (
    ChatExample,
    Message,
    ValidationReport,
    from_hf_dataset,
    iter_chat_jsonl,
    iter_numbered_chat_jsonl,
    read_alpaca_json,
    read_chat_jsonl,
    read_examples,
    read_prompt_completion_jsonl,
    to_hf_dataset,
    validate_chat_jsonl,
    write_chat_jsonl,
)
from tasksafe.data.datasets import DATASETS, DatasetInfo, dataset_info, hashed_split, load
from tasksafe.data.io import atomic_write, write_json
from tasksafe.data.records import (
    BenignInstruction,
    HarmfulPrompt,
    Kind,
    LabelledCompletion,
    OverRefusalPrompt,
    SafetyPair,
    TaskItem,
    record_to_dict,
)
from tasksafe.data.sources import DataFiles

__all__ = [
    "DATASETS", "BenignInstruction", "ChatExample", "DataFiles", "DatasetInfo", "HarmfulPrompt", "Kind",
    "LabelledCompletion", "Message", "OverRefusalPrompt", "SafetyPair", "TaskItem", "ValidationReport",
    "atomic_write", "dataset_info", "from_hf_dataset", "hashed_split", "iter_chat_jsonl", "iter_numbered_chat_jsonl",
    "load",
    "read_alpaca_json", "read_chat_jsonl", "read_examples", "read_prompt_completion_jsonl", "record_to_dict",
    "to_hf_dataset", "validate_chat_jsonl", "write_chat_jsonl", "write_json",
]
