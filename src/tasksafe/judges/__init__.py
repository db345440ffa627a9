"""Judges: decide whether a response refuses, complies, or is degenerate."""

from tasksafe.judges import classifiers, embedding, llm  # noqa: F401, E402  (register; heavy imports stay lazy)
from tasksafe.judges.base import JUDGES, LABELS, Judge, Verdict, degenerate_reason, judge_many, strip_judge_addressed
from tasksafe.judges.keywords import REFUSAL_PATTERNS, is_refusal, keyword_judge

__all__ = ["JUDGES", "LABELS", "REFUSAL_PATTERNS", "Judge", "Verdict", "degenerate_reason", "is_refusal",
           "judge_many", "keyword_judge", "strip_judge_addressed"]
