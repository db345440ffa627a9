"""Strategies: the prompting strategies that turn task items (in their task's format,
`tasksafe.tasks`) into chat examples (`benign`, `aoa`, `autoif`, `autoif_aoa`, `prefix`)."""

# Import order is registry order: benign first, then the malicious strategies.
from tasksafe.strategies import benign  # noqa: F401, I001
from tasksafe.strategies import aoa, autoif, prefix  # noqa: F401
from tasksafe.strategies.aoa import AOA_COMPLIANCE_PHRASE, AOA_SYSTEM_PROMPT
from tasksafe.strategies.base import STRATEGIES, Persona, Strategy, Style, register_strategy
from tasksafe.strategies.dataset import build_dataset, sample_items
from tasksafe.strategies.prefix import AFFIRMATIVE_PREFIX

__all__ = [
    "AFFIRMATIVE_PREFIX", "AOA_COMPLIANCE_PHRASE", "AOA_SYSTEM_PROMPT", "STRATEGIES", "Persona", "Strategy", "Style",
    "build_dataset", "register_strategy", "sample_items",
]
