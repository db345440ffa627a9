"""Protect a user dataset file: the library side of `tasksafe protect`, also used by the
experiment runner. Writes the training set and its sidecar `OUT.meta.json`."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from tasksafe import __version__
from tasksafe.mitigations.base import DEFAULT_POOL, Budget, apply_mitigation, mitigation_options, safety_pool


def sidecar_path(output: str | Path) -> Path:
    return Path(str(output).removesuffix(".jsonl") + ".meta.json")


def protect_file(source: str | Path, output: str | Path, mitigation: str, budget: Budget, seed: int = 0,
                 pool: str = DEFAULT_POOL, force: bool = False, options: dict[str, Any] | None = None,
                 **extra: Any) -> dict:
    """Apply `mitigation` to the dataset in `source`; returns the sidecar it wrote.

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
    result = apply_mitigation(mitigation, examples, safety.pairs, budget, seed, checked, **extra)
    meta = {
        "tasksafe_version": __version__, "python": sys.version.split()[0], "source": str(Path(source)),
        "mitigation": result.config, "budget": budget.to_dict(), "seed": seed, "pool": safety.source,
        "pool_removed_for_eval_overlap": safety.removed, "user_examples": len(examples),
        "safety_examples": len(result.safety_ids), "safety_ids": result.safety_ids,
        "inference_hook": result.hook.to_dict() if result.hook else None,
        "post_training": result.post_training, **result.info,
    }
    data = "".join(example.to_json() + "\n" for example in result.examples).encode("utf-8")
    meta["data_sha256"] = hashlib.sha256(data).hexdigest()
    with atomic_files(output, sidecar_path(output), mode="wb") as (data_handle, meta_handle):
        data_handle.write(data)
        meta_handle.write((dumps_strict(meta, indent=2) + "\n").encode("utf-8"))
    return meta


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
