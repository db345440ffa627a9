"""Evaluation: task accuracy, attack success rate (plain and in-format) and over-refusal."""

from tasksafe.evaluate.config import EvalConfig, EvalSettings
from tasksafe.evaluate.measure import evaluate
from tasksafe.evaluate.target import Target, in_format_renderer, resolve_target

__all__ = ["EvalConfig", "EvalSettings", "Target", "evaluate", "in_format_renderer", "resolve_target"]
