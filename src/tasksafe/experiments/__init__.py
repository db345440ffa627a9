"""Experiments: YAML grids, a crash-safe results store, and the runner."""

from tasksafe.experiments.grid import run_spec
from tasksafe.experiments.spec import Spec, expand, load_spec
from tasksafe.experiments.store import ResultsStore

__all__ = ["ResultsStore", "Spec", "expand", "load_spec", "run_spec"]
