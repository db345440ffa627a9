"""Protect a user dataset file: the library side of `tasksafe protect`, also used by the
experiment runner. Writes the training set and its sidecar `OUT.meta.json`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tasksafe import __version__
from tasksafe.mitigations.base import MITIGATIONS, Budget, safety_pool


def sidecar_path(output: str | Path) -> Path:
    return Path(str(output).removesuffix(".jsonl") + ".meta.json")


def protect_file(source: str | Path, output: str | Path, mitigation: str, budget: Budget, seed: int = 0,
                 pool: str = "bianchi-safety", **options: Any) -> dict:
    """Apply `mitigation` to the dataset in `source`; returns the sidecar it wrote."""
    from tasksafe.data.chat import read_examples, write_chat_jsonl
    from tasksafe.data.io import write_json

    chosen = MITIGATIONS.get(mitigation)
    examples = read_examples(source)
    safety = safety_pool(pool)
    result = chosen(examples, safety.pairs, budget, seed, **options)
    meta = {
        "tasksafe_version": __version__, "python": sys.version.split()[0], "source": str(Path(source)),
        "mitigation": result.config, "budget": budget.to_dict(), "seed": seed, "pool": safety.source,
        "pool_removed_for_eval_overlap": safety.removed, "user_examples": len(examples),
        "safety_examples": len(result.safety_ids), "safety_ids": result.safety_ids,
        "inference_hook": result.hook.to_dict() if result.hook else None,
        "post_training": result.post_training, **result.info,
    }
    write_chat_jsonl(output, result.examples)
    write_json(sidecar_path(output), meta)
    return meta
