"""Tasks: the ground-truth formats of the task datasets (SST-2, AG News, MMLU, GSM8K, PIQA,
BoolQ), their answer parsers and their scoring. Strategies render task items in these formats;
evaluation parses and scores answers with them."""

from tasksafe.tasks.formats import LETTERS, TASKS, TaskFormat, parse_choice, parse_label, parse_number

__all__ = ["LETTERS", "TASKS", "TaskFormat", "parse_choice", "parse_label", "parse_number"]
