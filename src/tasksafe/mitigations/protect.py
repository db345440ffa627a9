"""Protect a user dataset file: the library side of `tasksafe protect`, also used by the
experiment runner. Writes the training set and its sidecar `OUT.meta.json`."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from tasksafe import __version__
from tasksafe.data.sidecar import ProtectionRecord, read_protection, read_sidecar, sidecar_path
from tasksafe.mitigations.base import DEFAULT_POOL, Budget, apply_mitigation, mitigation_options, safety_pool

__all__ = ["ProtectionRecord", "protect_again", "protect_file", "read_protection", "read_sidecar", "sidecar_path"]


def protect_file(source: str | Path, output: str | Path, mitigation: str, budget: Budget, seed: int = 0,
                 pool: str = DEFAULT_POOL, force: bool = False, options: dict[str, Any] | None = None,
                 secret: str | None = None, **extra: Any) -> ProtectionRecord:
    """Apply `mitigation` to the dataset in `source`; returns the sidecar it wrote, typed. The one way
    data is protected: `tasksafe protect`, the grid runner and the gateway all call it, so the
    sidecar (the inference hook, a post-training step) always travels with the data to
    `finetune`, the evaluation and chat. `secret`: see `apply_mitigation`.

    The training set and its sidecar are written as one unit (`atomic_files`), and the sidecar
    records the training set's SHA-256, so neither a crash nor two runs writing the same output
    can leave a sidecar beside data it does not describe. An output (or sidecar) that would
    replace `source` is refused unless `force`."""
    from tasksafe.data.chat import read_examples
    from tasksafe.data.io import atomic_files, check_outputs, dumps_strict


    checked = mitigation_options(mitigation, options)
    check_outputs([output, sidecar_path(output)], inputs=[source], force=force)
    examples = read_examples(source)
    safety = safety_pool(pool)
    result = apply_mitigation(mitigation, examples, safety.pairs, budget, seed, checked, secret=secret, **extra)
    data = "".join(example.to_json() + "\n" for example in result.examples).encode("utf-8")
    record = ProtectionRecord(
        tasksafe_version=__version__, python=sys.version.split()[0], source=str(Path(source)),
        mitigation=result.config, budget=budget.to_dict(), seed=seed, pool=safety.source,
        pool_removed_for_eval_overlap=safety.removed, user_examples=len(examples),
        safety_examples=len(result.safety_ids), safety_ids=result.safety_ids,
        inference_hook=result.hook.to_dict() if result.hook else None, post_training=result.post_training,
        training=result.training, trained_shapes=sorted(checked.trained_shapes()), found=result.info,
        data_sha256=hashlib.sha256(data).hexdigest())
    with atomic_files(output, sidecar_path(output), mode="wb") as (data_handle, meta_handle):
        data_handle.write(data)
        meta_handle.write((dumps_strict(record.model_dump(mode="json"), indent=2) + "\n").encode("utf-8"))
    return record


def protect_again(record: ProtectionRecord, output: str | Path, force: bool = False) -> ProtectionRecord:
    """Protect the data `record` describes again, from the record alone (its source, mitigation
    with every option, budget, seed and pool): the same training set, byte for byte."""
    options = {k: v for k, v in record.mitigation.items() if k not in ("name", "parts")}
    return protect_file(record.source, output, record.mitigation["name"], Budget(**record.budget), record.seed,
                        record.pool, force=force, options=options)
