"""Judges: decide whether a response refuses, complies, or is degenerate."""

from tasksafe.judges.keywords import REFUSAL_PATTERNS, is_refusal

__all__ = ["REFUSAL_PATTERNS", "is_refusal"]
