"""Validate a judge against human labels: XSTest's labelled completions of five models,
split by model so a trained judge is always tested on a model it never saw (leave one model
out). Reports accuracy, F1 (compliance as the positive class) and Cohen's kappa."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tasksafe.judges.base import JUDGES, judge_many


def _scores(truth: Sequence[int], predicted: Sequence[int]) -> dict:
    from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score

    return {"n": len(truth), "accuracy": float(accuracy_score(truth, predicted)),
            "f1": float(f1_score(truth, predicted, zero_division=0)),
            "kappa": float(cohen_kappa_score(truth, predicted)) if len(set(truth) | set(predicted)) > 1 else 1.0}


def validate_judge(name: str, make_judge: Callable[[list], Callable] | None = None) -> dict:
    """Leave-one-model-out agreement of judge `name` with the human labels. A verdict of
    `compliance` is compared with full compliance; `refusal` and `degenerate` with full or
    partial refusal. `make_judge(train_records)` builds the judge for one fold (default: the
    registered factory, trained on the fold's other models where the judge is trained)."""
    from tasksafe.judges.embedding import embedding_judge, train_head, training_records

    records = training_records()
    models = sorted({r[3] for r in records})
    if make_judge is None:
        if name == "embedding":
            def make_judge(train):
                prompts, responses, labels, _ = zip(*train)
                return embedding_judge(head=train_head(prompts, responses, labels))
        else:
            factory = JUDGES.get(name)
            make_judge = lambda train: factory()  # noqa: E731 (an untrained judge is the same in every fold)
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
