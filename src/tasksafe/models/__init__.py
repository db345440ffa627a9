"""Models: the registry of loadable causal LMs (embedded SmolLM2, tiny random, the aligned
organism, any HF path) and loading with an optional adapter."""

from tasksafe.models.load import load_model
from tasksafe.models.registry import MODELS, resolve_model

__all__ = ["MODELS", "load_model", "resolve_model"]
