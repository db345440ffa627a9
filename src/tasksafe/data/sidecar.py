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
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

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


class ProtectionRecord(BaseModel):
    """What `tasksafe protect` writes beside a training set and every later stage reads: the
    typed hand-off from the protect stage. Each field has one meaning; what the mitigation
    found (its frames, allocation, counts) stays under `found`, so no mitigation's key can
    overwrite the record's own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tasksafe_version: str = ""
    python: str = ""
    source: str = Field("", description="the user dataset protected")
    mitigation: dict[str, Any] = Field(default_factory=dict, description="the mitigation's name and every checked "
                                       "option (for a composition, its parts): enough to protect the data again")
    budget: dict[str, Any] = Field(default_factory=dict, description="{k: N} or {fraction: F}")
    seed: int = 0
    pool: str = ""
    pool_removed_for_eval_overlap: list[dict] = Field(default_factory=list)
    user_examples: int = 0
    safety_examples: int = 0
    safety_ids: list[str] = Field(default_factory=list)
    inference_hook: dict[str, Any] | None = Field(None, description="a system prompt to add at inference")
    post_training: dict[str, Any] | None = Field(None, description="a step on the trained weights")
    training: dict[str, Any] | None = Field(None, description="what training must minimise "
                                                               "(tasksafe.train.objective; None: plain SFT)")
    trained_shapes: list[str] = Field(default_factory=list, description="held-out phrasing shapes the mitigation trains")
    found: dict[str, Any] = Field(default_factory=dict, description="what the mitigation found: frames, allocation, "
                                                                    "counts per kind and place")
    data_sha256: str = ""

    @model_validator(mode="before")
    @classmethod
    def _older(cls, data: Any) -> Any:
        """Sidecars written before this record spread the mitigation's findings over the top
        level: those keys are read into `found`."""
        if isinstance(data, dict) and not set(data) <= set(cls.model_fields):
            known = {k: v for k, v in data.items() if k in cls.model_fields}
            return {**known, "found": {**data.get("found", {}), **{k: v for k, v in data.items() if k not in known}}}
        return data


def sidecar_path(output: str | Path) -> Path:
    return Path(str(output).removesuffix(".jsonl") + ".meta.json")


def read_protection(data: str | Path) -> ProtectionRecord | None:
    """`read_sidecar` as the typed record (a sidecar of another shape is an error naming it)."""
    from pydantic import ValidationError

    from tasksafe.errors import DataFileError

    meta = read_sidecar(data)
    if meta is None:
        return None
    try:
        return ProtectionRecord.model_validate(meta)
    except ValidationError as err:
        first = err.errors()[0]
        raise DataFileError(str(sidecar_path(data)), f"is not a valid sidecar ({'.'.join(map(str, first['loc']))}: "
                                                     f"{first['msg']})") from None


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
