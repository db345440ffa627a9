"""A data mitigation and a training mitigation under one name, `DATA+TRAINING` (e.g.
`paraphrase+constrained`): the data mitigation protects the set, the training one adds what it
asks of training. The pair is an ordinary registry entry, so `tasksafe protect`, specs and
gateway policies take it by name; its options are both parts' options (their names never
clash), and its recorded config names each part with its options."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tasksafe.data.chat import ChatExample
from tasksafe.data.records import SafetyPair
from tasksafe.errors import UserError
from tasksafe.mitigations.base import MITIGATIONS, Budget, MitigationResult, apply_mitigation, register_mitigation


def _part(options: Any, model) -> dict:
    return {name: getattr(options, name) for name in model.model_fields}


def register_composition(data: str, training: str) -> str:
    """Register `data+training`; returns the name. `data` must add examples and `training`
    must ask something of training and change no data."""
    info, trains = MITIGATIONS.info(data), MITIGATIONS.info(training)
    if not info["adds_examples"] or trains["adds_examples"] or trains["post_training"] is not None:
        raise UserError(f"{data}+{training}: a composition is a data mitigation and a training-only one")
    data_options, training_options = info["options"], trains["options"]
    clash = set(data_options.model_fields) & set(training_options.model_fields)
    if clash:
        raise UserError(f"{data}+{training}: both take the options {sorted(clash)}")

    class Composed(data_options, training_options):
        def training(self) -> dict | None:
            asked = {**(data_options.model_validate(_part(self, data_options)).training() or {}),
                     **(training_options.model_validate(_part(self, training_options)).training() or {})}
            return asked or None

        def trained_shapes(self) -> frozenset[str]:
            return (data_options.model_validate(_part(self, data_options)).trained_shapes()
                    | training_options.model_validate(_part(self, training_options)).trained_shapes())

    Composed.__name__ = f"{data_options.__name__}And{training_options.__name__}"
    name = f"{data}+{training}"

    def composed(dataset: Sequence[ChatExample], pool: Sequence[SafetyPair], budget: Budget, seed: int,
                 **arguments: Any) -> MitigationResult:
        own = {key: arguments.pop(key) for key in list(arguments) if key in data_options.model_fields}
        trained = {key: arguments.pop(key) for key in list(arguments) if key in training_options.model_fields}
        result = apply_mitigation(data, dataset, pool, budget, seed, own, **arguments)
        second = apply_mitigation(training, result.examples, pool, budget, seed, trained)
        result.config = {"parts": [result.config, second.config]}  # apply_mitigation adds the name and options
        return result

    register_mitigation(name, f"{data}, trained with {training} (each as described above)",
                        adds_examples=True, options=Composed, post_training=info["post_training"],
                        uses_secret=info["uses_secret"])(composed)
    return name


COMPOSITIONS = [("paraphrase", "constrained"), ("paraphrase_wide", "constrained"), ("recovery", "constrained"),
                ("mix", "constrained")]
"""The compositions registered with the package."""
