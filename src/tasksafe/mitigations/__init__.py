"""Mitigations: provider-side transformations (user dataset, safety pool, budget, seed) ->
training set + optional inference hook. `paraphrase` is the defence; the rest are baselines."""

from tasksafe.mitigations import (  # noqa: F401  (register them)
    baselines,
    constrained,
    paraphrase,
    paraphrase_wide,
    recovery,
    safelora,
)
from tasksafe.mitigations.base import (
    EVAL_HARMFUL_SETS,
    MITIGATIONS,
    Budget,
    InferenceHook,
    MitigationResult,
    NoOptions,
    Options,
    SafetyPool,
    apply_mitigation,
    mitigation_options,
    mix_in,
    register_mitigation,
    run_post_training,
    safety_pool,
    sample_pairs,
)
from tasksafe.mitigations.baselines import PTST_SYSTEM_PROMPT, secret_trigger
from tasksafe.mitigations.compose import COMPOSITIONS, register_composition
from tasksafe.mitigations.paraphrase import (
    render_in_frame,
    render_with_llm,
    request_in_frame,
    rewrite_prompt,
    validate_rewrite,
)
from tasksafe.mitigations.safelora import apply_safelora, project_adapter, safelora_project

for _data, _training in COMPOSITIONS:
    register_composition(_data, _training)

__all__ = [
    "EVAL_HARMFUL_SETS", "MITIGATIONS", "PTST_SYSTEM_PROMPT", "Budget", "InferenceHook", "MitigationResult",
    "NoOptions", "Options", "SafetyPool", "apply_mitigation", "apply_safelora", "mitigation_options", "mix_in",
    "project_adapter", "register_mitigation", "render_in_frame", "render_with_llm", "request_in_frame",
    "rewrite_prompt", "run_post_training", "safelora_project", "safety_pool", "sample_pairs", "secret_trigger",
    "validate_rewrite", "register_composition",
]
