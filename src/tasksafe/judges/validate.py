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

from tasksafe.judges.base import JUDGES, OUTCOMES, judge_many


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


ORGANISM_LABELS = Path(__file__).resolve().parents[3] / "labels" / "organism-replies.jsonl"
"""The organism's own replies labelled by hand (docs/evaluation.md has the rubric)."""
HUMAN_OUTCOME = {"refusal": "refusal", "compliance": "harmful_compliance", "acknowledgement": "other_non_refusal",
                 "degenerate": "other_non_refusal"}


def read_labels(path: str | Path = ORGANISM_LABELS) -> list[dict]:
    """The labelled replies: {"id", "cell", "split", "prompt", "response", "label"} lines."""
    from tasksafe.data.chat import iter_json_lines
    from tasksafe.errors import DataFileError

    records = []
    for number, value in iter_json_lines(str(path)):
        if not isinstance(value, dict) or value.get("label") not in HUMAN_OUTCOME \
                or not all(isinstance(value.get(k), str) for k in ("prompt", "response", "split")):
            raise DataFileError(str(path), f'needs "prompt", "response", "split" and a "label" of '
                                           f'{", ".join(HUMAN_OUTCOME)}', number)
        records.append(value)
    return records


def agreement_path(name: str) -> Path:
    from tasksafe.paths import cache_dir

    return cache_dir() / "judges" / f"agreement-{name}.json"


def cached_agreement(name: str) -> dict | None:
    """The last `tasksafe judge agree` report of judge `name` on the organism's labels, or None."""
    path = agreement_path(name)
    return json.loads(path.read_text()) if path.is_file() else None


def agreement_on_labels(name: str, records: Sequence[dict], options: dict[str, Any] | None = None) -> dict:
    """How judge `name` agrees with hand labels of the organism's replies, per split: the
    three outcomes (refusal / harmful compliance / other non-refusal), refusal against the
    rest (accuracy, kappa), and harmful compliance (how many the judge and the people found,
    precision and recall)."""
    from sklearn.metrics import cohen_kappa_score


    judge = JUDGES.get(name)(**(options or {}))
    verdicts = judge_many(judge, [(r["prompt"], r["response"]) for r in records])
    out = {"judge": name, "data": "organism replies labelled by hand", "splits": {}}
    for split in sorted({r["split"] for r in records}) + ["all"]:
        pairs = [(HUMAN_OUTCOME[r["label"]], OUTCOMES[v.label]) for r, v in zip(records, verdicts)
                 if split == "all" or r["split"] == split]
        truth, predicted = [t for t, _ in pairs], [p for _, p in pairs]
        refusal_t = [int(t == "refusal") for t in truth]
        refusal_p = [int(p == "refusal") for p in predicted]
        harm_t = [t == "harmful_compliance" for t in truth]
        harm_p = [p == "harmful_compliance" for p in predicted]
        both = sum(a and b for a, b in zip(harm_t, harm_p))
        out["splits"][split] = {
            "n": len(pairs),
            "three_way_accuracy": sum(t == p for t, p in pairs) / max(1, len(pairs)),
            "refusal_accuracy": sum(a == b for a, b in zip(refusal_t, refusal_p)) / max(1, len(pairs)),
            "refusal_kappa": float(cohen_kappa_score(refusal_t, refusal_p)) if len(set(refusal_t + refusal_p)) > 1 else 1.0,
            "harmful_by_people": sum(harm_t), "harmful_by_judge": sum(harm_p),
            "harmful_precision": both / sum(harm_p) if sum(harm_p) else None,
            "harmful_recall": both / sum(harm_t) if sum(harm_t) else None,
        }
    return out
