"""Mitigations: provider-side transformations (user dataset, safety pool, budget, seed) ->
training set + optional inference hook. `paraphrase` is the defence; the rest are baselines."""

from tasksafe.mitigations import baselines, paraphrase  # noqa: F401  (register the mitigations)
from tasksafe.mitigations.base import (
    EVAL_HARMFUL_SETS, MITIGATIONS, Budget, InferenceHook, MitigationResult, SafetyPool, mix_in, sample_pairs,
    safety_pool,
)
from tasksafe.mitigations.baselines import PTST_SYSTEM_PROMPT, secret_trigger
from tasksafe.mitigations.paraphrase import (
    render_in_frame, render_with_llm, request_in_frame, rewrite_prompt, validate_rewrite,
)
from tasksafe.mitigations.safelora import safelora_project

__all__ = [
    "EVAL_HARMFUL_SETS", "MITIGATIONS", "PTST_SYSTEM_PROMPT", "Budget", "InferenceHook", "MitigationResult",
    "SafetyPool", "mix_in", "render_in_frame", "render_with_llm", "request_in_frame", "rewrite_prompt", "safelora_project",
    "safety_pool", "sample_pairs", "secret_trigger", "validate_rewrite",
]
