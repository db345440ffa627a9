"""`constrained`: no data change; the fine-tune minimises Qi et al.'s token-wise constrained
objective against the aligned model it starts from (tasksafe.train.objective), which keeps the
first tokens of every reply, where refusing or complying is decided, close to the aligned
model's. Works for LoRA (the reference is the base with the adapter off) and full fine-tunes (a
frozen copy), wherever a protected set is trained: `tasksafe finetune`, grids and the gateway."""

from __future__ import annotations

from collections.abc import Sequence

from tasksafe.data.chat import ChatExample
from tasksafe.data.records import SafetyPair
from tasksafe.mitigations.base import Budget, MitigationResult, Options, register_mitigation
from tasksafe.train.objective import TokenConstraint, TrainingObjective


class ConstrainedOptions(Options, TokenConstraint):
    """The constraint's strengths (Qi et al.'s schedule by default)."""

    def training(self) -> dict:
        return TrainingObjective(constrained=TokenConstraint(**self.model_dump())).to_sidecar()


@register_mitigation("constrained", "no data change; Qi et al.'s token-wise constrained objective against the aligned "
                     "model, strongest on each reply's first tokens", adds_examples=False, options=ConstrainedOptions)
def constrained(dataset: Sequence[ChatExample], pool: Sequence[SafetyPair], budget: Budget, seed: int,
                **constraint) -> MitigationResult:
    return MitigationResult(list(dataset), [])
