"""The sidecar `tasksafe protect` writes beside a training set (`OUT.meta.json`): what was
added to the data and what must travel with a model trained on it (the inference hook, a
post-training step). Read by training, evaluation and the gateway, so it lives with the data,
not with the mitigations that write it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from tasksafe.data.chat import Message


@dataclass(frozen=True)
class InferenceHook:
    """A system prompt the provider adds at inference (prepended to the user's own)."""

    system_prompt: str

    def apply(self, messages: Sequence[Message]) -> list[Message]:
        messages = list(messages)
        if messages and messages[0].role == "system":
            return [Message("system", f"{self.system_prompt}\n\n{messages[0].content}")] + messages[1:]
        return [Message("system", self.system_prompt)] + messages

    def to_dict(self) -> dict:
        return asdict(self)


def sidecar_path(output: str | Path) -> Path:
    return Path(str(output).removesuffix(".jsonl") + ".meta.json")


def read_sidecar(data: str | Path) -> dict | None:
    """The sidecar `tasksafe protect` wrote beside training set `data`, or None if there is
    none. A sidecar that does not describe the file beside it (another run's, or the file was
    edited since) is an error, not a silent mismatch."""
    from tasksafe.data.io import UnsafeJSON, loads_strict, open_input, read_text
    from tasksafe.errors import DataFileError

    path = sidecar_path(data)
    if not path.exists():
        return None
    try:
        meta = loads_strict(read_text(path))
    except (json.JSONDecodeError, UnsafeJSON) as err:
        raise DataFileError(str(path), f"is not a valid sidecar ({err})") from None
    if not isinstance(meta, dict):
        raise DataFileError(str(path), "is not a valid sidecar (a JSON object was expected)")
    expected = meta.get("data_sha256")
    if expected:
        digest = hashlib.sha256()
        with open_input(data) as handle:
            for block in iter(lambda: handle.read(2**20), b""):
                digest.update(block)
        if digest.hexdigest() != expected:
            raise DataFileError(str(path), f"does not describe {data} (the data changed after tasksafe protect "
                                           "wrote it); protect the data again")
    return meta
