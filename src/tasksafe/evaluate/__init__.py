"""Evaluation: task accuracy, attack success rate (plain and in-format) and over-refusal."""

from tasksafe.evaluate.runner import EvalConfig, evaluate
from tasksafe.evaluate.target import Target, in_format_renderer, resolve_target

__all__ = ["EvalConfig", "Target", "evaluate", "in_format_renderer", "resolve_target"]
