"""What is being evaluated: a fine-tuning run directory or a plain model, with its adapter,
its inference hook, and the frame its training data used (for in-format prompts)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasksafe.data.chat import ChatExample, from_openai, to_openai
from tasksafe.errors import UserError


@dataclass
class Target:
    model: str
    adapter: str | None = None
    hook_system_prompt: str | None = None
    strategy: str | None = None  # the prompting strategy of the training data, when known
    train_examples: list[ChatExample] | None = None
    run_dir: str | None = None
    trained_shapes: frozenset[str] = frozenset()  # the held-out phrasing shapes its mitigation trained

    def apply_hook(self, messages: list[dict]) -> list[dict]:
        if not self.hook_system_prompt:
            return messages
        from tasksafe.data.sidecar import InferenceHook

        return to_openai(InferenceHook(self.hook_system_prompt).apply(from_openai(messages)))


def resolve_target(target: str, strategy: str | None = None, train_data: str | None = None) -> Target:
    """A run directory (config.json + adapter/ or model/) or a model name/path; `train_data`
    gives a model that is not a run directory the training set its frame comes from, and the
    inference hook its sidecar names (a model trained elsewhere on data `tasksafe protect` wrote)."""
    from tasksafe.data.chat import read_examples
    from tasksafe.data.sidecar import read_sidecar

    path = Path(target)
    if (path / "config.json").is_file() and ((path / "adapter").is_dir() or (path / "model").is_dir()):
        config = json.loads((path / "config.json").read_text())
        hook = json.loads((path / "hook.json").read_text()) if (path / "hook.json").is_file() else None
        examples = read_examples(config["data"]) if Path(config["data"]).is_file() else None
        strategy = strategy or _built_strategy(examples)
        shapes = _trained_shapes(config["data"])
        if (path / "adapter").is_dir():
            return Target(config["model"], str(path / "adapter"), (hook or {}).get("system_prompt"), strategy,
                          examples, str(path), shapes)
        return Target(str(path / "model"), None, (hook or {}).get("system_prompt"), strategy, examples, str(path),
                      shapes)
    if path.exists() and not (path / "config.json").is_file():
        raise UserError(f"{target} is neither a run directory (config.json with adapter/ or model/) nor a model folder")
    examples = read_examples(train_data) if train_data else None
    meta = (read_sidecar(train_data) or {}) if train_data else {}  # read (and its data hashed) once
    return Target(target, hook_system_prompt=(meta.get("inference_hook") or {}).get("system_prompt"),
                  strategy=strategy or _built_strategy(examples), train_examples=examples,
                  trained_shapes=frozenset(meta.get("trained_shapes") or ()))


def _trained_shapes(data: str) -> frozenset[str]:
    """The phrasing shapes the mitigation of a protected training set trained (its sidecar's
    `trained_shapes`, which `tasksafe protect` writes; none for other data)."""
    from tasksafe.data.sidecar import read_sidecar

    return frozenset((read_sidecar(data) or {}).get("trained_shapes") or ()) if Path(data).is_file() else frozenset()


def _built_strategy(examples: list[ChatExample] | None) -> str | None:
    """The strategy a training set was built with by `tasksafe build` (its metadata says), or None."""
    if not examples:
        return None
    strategies = {ex.metadata.get("strategy") for ex in examples if not ex.metadata.get("mitigation")}
    return strategies.pop() if len(strategies) == 1 and None not in strategies else None


def in_format_renderer(target: Target, seed: int = 0) -> Callable[[str], list[dict]] | None:
    """How to ask a request in the training data's frame: the strategy's own frame when the
    run's data came from `tasksafe build`, else the frame inferred from the training data.
    None when neither is known (a plain model without --strategy)."""
    if target.strategy:
        from tasksafe.strategies import STRATEGIES

        chosen = STRATEGIES.get(target.strategy)
        return lambda request: to_openai(chosen.frame_prompt(request))
    if target.train_examples:
        from tasksafe.audit.ask import request_in_frame
        from tasksafe.audit.frame import infer_frame

        user_examples = [ex for ex in target.train_examples if not ex.metadata.get("mitigation")]
        frame = infer_frame(user_examples)
        donors = [ex for ex in user_examples[:500] if frame.matches(ex)] or user_examples[:1]
        rng = random.Random(f"in-format:{seed}")
        return lambda request: to_openai(request_in_frame(frame, request, rng.choice(donors)))
    return None
