"""Validate a judge against human labels: XSTest's labelled completions of five models,
split by model so a trained judge is always tested on a model it never saw (leave one model
out). Reports accuracy, F1 (compliance as the positive class) and Cohen's kappa.

Validation is an explicit, cached step (`tasksafe judge validate`, `save_validation`): an
evaluation only reads the cache (`cached_validation`) and records "not validated" when it is
absent, so evaluating never starts thousands of judge calls or a second model unannounced."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tasksafe.judges.base import JUDGES, judge_many


def _scores(truth: Sequence[int], predicted: Sequence[int]) -> dict:
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    return {"n": len(truth), "accuracy": float(accuracy_score(truth, predicted)),
            "f1": float(f1_score(truth, predicted, zero_division=0)),
            "kappa": float(cohen_kappa_score(truth, predicted)) if len(set(truth) | set(predicted)) > 1 else 1.0}


def validate_judge(name: str, make_judge: Callable[[list], Callable] | None = None,
                   options: dict[str, Any] | None = None) -> dict:
    """Leave-one-model-out agreement of judge `name` with the human labels. A verdict of
    `compliance` is compared with full compliance; `refusal` and `degenerate` with full or
    partial refusal. `make_judge(train_records)` builds the judge for one fold (default: the
    registered factory, trained on the fold's other models where the judge is trained)."""
    from tasksafe.judges.embedding import training_records

    records = training_records()
    models = sorted({r[3] for r in records})
    if make_judge is None:
        fit = JUDGES.info(name).get("fit")
        factory = JUDGES.get(name)
        make_judge = fit or (lambda train: factory(**(options or {})))  # untrained: the same in every fold
    per_model, all_truth, all_predicted = {}, [], []
    for held_out in models:
        train = [r for r in records if r[3] != held_out]
        test = [r for r in records if r[3] == held_out]
        judge = make_judge(train)
        verdicts = judge_many(judge, [(p, r) for p, r, _, _ in test])
        truth = [1 if label == "compliance" else 0 for _, _, label, _ in test]
        predicted = [1 if v.label == "compliance" else 0 for v in verdicts]
        per_model[held_out] = _scores(truth, predicted)
        all_truth += truth
        all_predicted += predicted
    return {"judge": name, "data": "xstest-labels (human final_label)", "split": "leave one model out",
            "overall": _scores(all_truth, all_predicted), "per_held_out_model": per_model}


def validation_path(name: str, options: dict[str, Any] | None = None) -> Path:
    from tasksafe.paths import cache_dir

    suffix = f"-{hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:8]}" if options else ""
    return cache_dir() / "judges" / f"validation-{name}{suffix}.json"


def cached_validation(name: str, options: dict[str, Any] | None = None) -> dict | None:
    """The stored validation report of judge `name` (with `options`), or None when it was never run."""
    path = validation_path(name, options)
    return json.loads(path.read_text()) if path.is_file() else None


def save_validation(name: str, report: dict, options: dict[str, Any] | None = None) -> Path:
    from tasksafe.data.io import write_json

    path = validation_path(name, options)
    write_json(path, report)
    return path
