"""The chat example, the one record type every stage exchanges, and its file formats.

A user dataset is OpenAI-style chat JSONL, one `{"messages": [...]}` object per line. Each
message has a `role` (system, user or assistant), a non-empty `content`, an optional
`weight` (0 or 1: whether training learns from that assistant turn) and any other keys,
which are kept as they are. An optional `metadata` object records where an example came
from (task, strategy, item id, gold answer).

>>> ex = ChatExample.from_turns(user="2+2?", assistant="4", system="Be brief.")
>>> ex.to_json()
'{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}'
>>> parse_chat_example(json.loads(ex.to_json())) == ex
True
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from tasksafe.data.io import (
    LineTooLong,
    UnsafeJSON,
    atomic_write,
    dumps_strict,
    iter_raw_lines,
    loads_strict,
    open_input,
    read_text,
)
from tasksafe.errors import DataFileError

ROLES = ("system", "user", "assistant")
VALID_LINE = (
    'a valid line looks like {"messages": [{"role": "user", "content": "Is this review positive? ..."}, '
    '{"role": "assistant", "content": "positive"}]}'
)


@dataclass
class Message:
    role: str
    content: str
    weight: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.weight is not None:
            out["weight"] = self.weight
        out.update(self.extra)
        return out


@dataclass
class ChatExample:
    messages: list[Message]
    metadata: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_turns(cls, user: str, assistant: str | None = None, system: str | None = None,
                   metadata: dict[str, Any] | None = None) -> ChatExample:
        """A single-turn example; `assistant=None` gives a prompt awaiting a reply."""
        messages = [Message("system", system)] if system is not None else []
        messages.append(Message("user", user))
        if assistant is not None:
            messages.append(Message("assistant", assistant))
        return cls(messages, dict(metadata or {}))

    @property
    def system(self) -> str | None:
        return self.messages[0].content if self.messages and self.messages[0].role == "system" else None

    @property
    def prompt(self) -> list[Message]:
        """Every message before the final assistant turn (the whole list if there is none)."""
        if self.messages and self.messages[-1].role == "assistant":
            return self.messages[:-1]
        return list(self.messages)

    @property
    def answer(self) -> str | None:
        """The final assistant turn's text, if the example ends with one."""
        return self.messages[-1].content if self.messages and self.messages[-1].role == "assistant" else None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"messages": [m.to_dict() for m in self.messages]}
        if self.metadata:
            out["metadata"] = self.metadata
        out.update(self.extra)
        return out

    def to_json(self) -> str:
        return dumps_strict(self.to_dict())

    def to_openai(self) -> list[dict[str, str]]:
        """Plain `[{"role", "content"}]` dicts, as chat templates and APIs take them."""
        return to_openai(self.messages)


def to_openai(messages: Iterable[Message]) -> list[dict[str, str]]:
    """Messages as plain `{"role", "content"}` dicts (what chat templates and APIs take)."""
    return [{"role": m.role, "content": m.content} for m in messages]


def from_openai(messages: Iterable[dict]) -> list[Message]:
    """Plain `{"role", "content"}` dicts as messages (other keys are dropped)."""
    return [Message(m["role"], m["content"]) for m in messages]


def user_turn(text: str) -> list[dict[str, str]]:
    """A conversation of one user message, as plain dicts."""
    return [{"role": "user", "content": text}]


class InvalidExample(ValueError):
    """Why one parsed object is not a valid chat example (the message is a clause)."""


def parse_message(obj: Any, index: int) -> Message:
    if not isinstance(obj, dict):
        raise InvalidExample(f"message {index} is a JSON {_json_type(obj)}, not an object")
    role = obj.get("role")
    if role not in ROLES:
        found = "no role" if role is None else f"unknown role {role!r}"
        raise InvalidExample(f"message {index} has {found}; roles are system, user and assistant")
    content = obj.get("content")
    if not isinstance(content, str):
        raise InvalidExample(f"message {index} ({role}) has no text content")
    if not content.strip():
        raise InvalidExample(f"message {index} ({role}) has empty content")
    weight = obj.get("weight")
    if weight is not None and weight not in (0, 1):
        raise InvalidExample(f"message {index} has weight {weight!r}; a weight is 0 or 1")
    extra = {k: v for k, v in obj.items() if k not in ("role", "content", "weight")}
    return Message(role, content, weight, extra)


def parse_chat_example(obj: Any, require_assistant_last: bool = True) -> ChatExample:
    """Check one decoded JSON value and turn it into a `ChatExample`.

    Raises `InvalidExample` saying what is wrong. A training example must end with an
    assistant turn; prompts for generation pass `require_assistant_last=False`."""
    if not isinstance(obj, dict):
        raise InvalidExample(f"the line is a JSON {_json_type(obj)}, not an object")
    if "messages" not in obj:
        keys = ", ".join(sorted(obj)) or "none"
        raise InvalidExample(f'the object has no "messages" key (keys: {keys})')
    raw_messages = obj["messages"]
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidExample('"messages" must be a non-empty list of messages')
    messages = [parse_message(m, i) for i, m in enumerate(raw_messages)]
    for i, message in enumerate(messages[1:], start=1):
        if message.role == "system":
            raise InvalidExample(f"message {i} is a system message; only the first message may be one")
    if require_assistant_last and messages[-1].role != "assistant":
        raise InvalidExample(
            f"the last message is from the {messages[-1].role}; a training example ends with the assistant's answer"
        )
    metadata = obj.get("metadata", {})
    if not isinstance(metadata, dict):
        raise InvalidExample('"metadata" must be an object')
    extra = {k: v for k, v in obj.items() if k not in ("messages", "metadata")}
    return ChatExample(messages, metadata, extra)


def _json_type(obj: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(obj), type(obj).__name__)


def json_error_place(err: json.JSONDecodeError) -> str:
    """'Expecting value at column 3'; 'Unterminated string starting at column 9' (the message
    of some errors ends in 'at' already)."""
    return f"{err.msg}{'' if err.msg.endswith(' at') else ' at'} column {err.colno}"


def decode_json_line(raw: bytes | LineTooLong) -> Any:
    """Decode one raw JSONL line, raising `InvalidExample` with a readable reason."""
    if isinstance(raw, LineTooLong):
        raise InvalidExample(
            f"the line is {raw.size_at_least / 2**20:.0f} MiB, over the 16 MiB limit for one example"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidExample(f"the line is not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1})") from None
    try:
        return loads_strict(text)
    except json.JSONDecodeError as err:
        truncated = " (the line looks truncated)" if err.pos >= len(text.rstrip()) else ""
        raise InvalidExample(f"the line is not valid JSON: {json_error_place(err)}{truncated}") from None
    except UnsafeJSON as err:
        raise InvalidExample(f"the line is not usable JSON: {err}") from None


def _nonblank_lines(path: str | os.PathLike) -> Iterator[tuple[int, bytes | LineTooLong]]:
    with open_input(path) as handle:
        for number, raw in iter_raw_lines(handle):
            if isinstance(raw, LineTooLong) or raw.strip():
                yield number, raw


def iter_json_lines(path: str | os.PathLike, hint: str = VALID_LINE) -> Iterator[tuple[int, Any]]:
    """Yield (line number, decoded value) for each non-blank line; the first bad line raises
    `DataFileError` naming the file and line (and `hint`). An empty file is an error too."""
    seen = False
    for number, raw in _nonblank_lines(path):
        seen = True
        try:
            yield number, decode_json_line(raw)
        except InvalidExample as err:
            raise DataFileError(str(path), str(err), number, hint) from None
    if not seen:
        raise DataFileError(str(path), "the file is empty", None, hint)


def iter_numbered_chat_jsonl(path: str | os.PathLike,
                             require_assistant_last: bool = True) -> Iterator[tuple[int, ChatExample]]:
    """Stream (line number, chat example); a bad line raises `DataFileError`."""
    for number, obj in iter_json_lines(path):
        try:
            yield number, parse_chat_example(obj, require_assistant_last)
        except InvalidExample as err:
            raise DataFileError(str(path), str(err), number, VALID_LINE) from None


def iter_chat_jsonl(path: str | os.PathLike, require_assistant_last: bool = True) -> Iterator[ChatExample]:
    """Stream the chat examples of a JSONL file; a bad line raises `DataFileError`."""
    for _, example in iter_numbered_chat_jsonl(path, require_assistant_last):
        yield example


def read_chat_jsonl(path: str | os.PathLike, require_assistant_last: bool = True) -> list[ChatExample]:
    return list(iter_chat_jsonl(path, require_assistant_last))


def write_chat_jsonl(path: str | os.PathLike, examples: Iterable[ChatExample]) -> int:
    """Write examples as chat JSONL atomically; returns how many were written."""
    count = 0
    with atomic_write(path) as handle:
        for example in examples:
            handle.write(example.to_json())
            handle.write("\n")
            count += 1
    return count


@dataclass
class ValidationReport:
    path: str
    examples: int = 0
    role_counts: Counter = field(default_factory=Counter)
    problems: list[tuple[int | None, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self, max_problems: int | None = None) -> dict[str, Any]:
        shown = self.problems if max_problems is None else self.problems[:max_problems]
        return {
            "path": self.path,
            "ok": self.ok,
            "valid_examples": self.examples,
            "messages_per_role": {role: self.role_counts.get(role, 0) for role in ROLES},
            "problem_count": len(self.problems),
            "problems": [{"line": line, "problem": text} for line, text in shown],
        }


def validate_chat_jsonl(path: str | os.PathLike, require_assistant_last: bool = True) -> ValidationReport:
    """Check every line of a chat JSONL file and collect all problems (not only the first)."""
    report = ValidationReport(str(path))
    seen = False
    for number, raw in _nonblank_lines(path):
        seen = True
        try:
            example = parse_chat_example(decode_json_line(raw), require_assistant_last)
        except InvalidExample as err:
            report.problems.append((number, str(err)))
            continue
        report.examples += 1
        report.role_counts.update(m.role for m in example.messages)
    if not seen:
        report.problems.append((None, "the file is empty"))
    return report


# --- other input formats ------------------------------------------------------------------

def _as_messages(value: Any, role: str, what: str) -> list[Message]:
    if isinstance(value, str):
        return [parse_message({"role": role, "content": value}, 0)]
    if isinstance(value, list):
        return [parse_message(m, i) for i, m in enumerate(value)]
    raise InvalidExample(f'"{what}" must be a string or a list of messages')


def read_prompt_completion_jsonl(path: str | os.PathLike) -> list[ChatExample]:
    """Read `{"prompt": ..., "completion": ...}` lines (strings, or message lists as in TRL's
    conversational prompt-completion format) into chat examples."""
    return [example for _, example in _numbered_prompt_completion(path)]


def _numbered_prompt_completion(path: str | os.PathLike) -> list[tuple[int, ChatExample]]:
    hint = 'a valid line looks like {"prompt": "Is this review positive? ...", "completion": "positive"}'
    examples = []
    for number, obj in iter_json_lines(path):
        try:
            if not isinstance(obj, dict) or "prompt" not in obj or "completion" not in obj:
                raise InvalidExample('the line needs an object with "prompt" and "completion"')
            messages = _as_messages(obj["prompt"], "user", "prompt") + _as_messages(obj["completion"], "assistant", "completion")
            metadata = {k: v for k, v in obj.items() if k not in ("prompt", "completion")}
            examples.append((number, parse_chat_example({"messages": [m.to_dict() for m in messages],
                                                         "metadata": metadata})))
        except InvalidExample as err:
            raise DataFileError(str(path), str(err), number, hint) from None
    return examples


def read_alpaca_json(path: str | os.PathLike) -> list[ChatExample]:
    """Read an Alpaca-style JSON list of `{instruction, input, output}` (optional `system`).
    A non-empty `input` follows the instruction after a blank line."""
    hint = 'a valid file looks like [{"instruction": "...", "input": "", "output": "..."}]'
    text = read_text(path)
    try:
        data = loads_strict(text)
    except json.JSONDecodeError as err:
        raise DataFileError(str(path), f"is not valid JSON: {json_error_place(err)}", err.lineno, hint) from None
    except UnsafeJSON as err:
        raise DataFileError(str(path), f"is not usable JSON: {err}", None, hint) from None
    if not isinstance(data, list) or not data:
        raise DataFileError(str(path), "must hold a non-empty JSON list", None, hint)
    examples = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("instruction"), str) or not isinstance(item.get("output"), str):
            raise DataFileError(str(path), f"item {i} needs string \"instruction\" and \"output\"", None, hint)
        user = item["instruction"] + (f"\n\n{item['input']}" if item.get("input") else "")
        try:
            examples.append(ChatExample(
                [parse_message({"role": r, "content": c}, j) for j, (r, c) in enumerate(
                    ([("system", item["system"])] if item.get("system") else []) + [("user", user), ("assistant", item["output"])])],
                {"index": i},
            ))
        except InvalidExample as err:
            raise DataFileError(str(path), f"item {i}: {err}", None, hint) from None
    return examples


def read_numbered_examples(path: str | os.PathLike) -> list[tuple[int, ChatExample]]:
    """Read a user dataset in any supported format: chat JSONL, prompt/completion JSONL, or
    Alpaca JSON (chosen by the file's first character and first object's keys), with where
    each example stands: its line, or for Alpaca JSON its 1-based item number."""
    with open_input(path) as handle:
        head = handle.read(4096).lstrip()
    if head.startswith(b"["):
        return list(enumerate(read_alpaca_json(path), start=1))
    for _, obj in iter_json_lines(path):
        if isinstance(obj, dict) and "messages" not in obj and "prompt" in obj:
            return _numbered_prompt_completion(path)
        break
    return list(iter_numbered_chat_jsonl(path))


def read_examples(path: str | os.PathLike) -> list[ChatExample]:
    """The examples of `read_numbered_examples`, without their positions."""
    return [example for _, example in read_numbered_examples(path)]


# --- Hugging Face datasets ------------------------------------------------------------------

def to_hf_dataset(examples: Iterable[ChatExample]):
    """A `datasets.Dataset` with a `messages` column (role, content, weight, extra as JSON)
    and a `metadata` column (JSON text), so heterogeneous metadata survives Arrow."""
    from datasets import Dataset

    rows = [
        {
            "messages": [
                {"role": m.role, "content": m.content, "weight": m.weight,
                 "extra": json.dumps(m.extra, ensure_ascii=False) if m.extra else None}
                for m in ex.messages
            ],
            "metadata": json.dumps(ex.metadata, ensure_ascii=False),
            "extra": json.dumps(ex.extra, ensure_ascii=False),
        }
        for ex in examples
    ]
    return Dataset.from_list(rows)


def from_hf_dataset(dataset) -> list[ChatExample]:
    """Inverse of `to_hf_dataset`; also accepts any dataset with a plain `messages` column."""
    examples = []
    for row in dataset:
        messages = [
            Message(m["role"], m["content"], m.get("weight"), json.loads(m["extra"]) if m.get("extra") else {})
            for m in row["messages"]
        ]
        metadata = json.loads(row["metadata"]) if isinstance(row.get("metadata"), str) else (row.get("metadata") or {})
        extra = json.loads(row["extra"]) if isinstance(row.get("extra"), str) else {}
        examples.append(ChatExample(messages, metadata, extra))
    return examples
