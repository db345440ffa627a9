"""Safe LoRA (Hsu et al., 2024), all of it: the registry entry (no data change, a
post-training step), the pure tensor projection, and its application to a finished run.

For each layer, the alignment matrix V = W_aligned - W_unaligned spans the directions that
alignment moved. Its projection C = V V^T / ||V||_F maps an update onto those directions.
A LoRA update dW = B A whose projection C dW has a cosine similarity to dW below the
threshold has drifted away from alignment; its B is replaced by C B, so the layer's update
becomes C dW. Layers above the threshold keep their update. `mode="away"` instead removes
the aligned component, dW - C dW (documented alternative, not the paper's default).
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tasksafe.data.chat import ChatExample
from tasksafe.data.io import write_json
from tasksafe.data.records import SafetyPair
from tasksafe.errors import UserError
from tasksafe.mitigations.base import Budget, MitigationResult, Options, register_mitigation


@dataclass
class LayerDecision:
    name: str
    similarity: float
    projected: bool


def alignment_projection(aligned, unaligned):
    """C = V V^T / ||V||_F for V = aligned - unaligned (both [out, in])."""
    import torch

    v = (aligned - unaligned).to(torch.float32)
    norm = torch.linalg.matrix_norm(v)
    if norm == 0:
        return torch.zeros(v.shape[0], v.shape[0], dtype=torch.float32)
    return (v @ v.T) / norm


def safelora_project(lora_a: dict[str, Any], lora_b: dict[str, Any], aligned: dict[str, Any],
                     unaligned: dict[str, Any], threshold: float = 0.5,
                     mode: str = "onto") -> tuple[dict[str, Any], list[LayerDecision]]:
    """New LoRA B matrices (same keys as `lora_b`) and a decision per layer.

    `lora_a[name]` is [r, in], `lora_b[name]` is [out, r]; `aligned[name]` and
    `unaligned[name]` are the base weights [out, in] of the same layer."""
    import torch

    if mode not in ("onto", "away"):
        raise ValueError("mode is 'onto' (Safe LoRA) or 'away'")
    new_b, decisions = {}, []
    for name, b in lora_b.items():
        a = lora_a[name]
        c = alignment_projection(aligned[name], unaligned[name])
        delta = b.to(torch.float32) @ a.to(torch.float32)
        projected = c @ delta
        similarity = torch.nn.functional.cosine_similarity(delta.flatten(), projected.flatten(), dim=0).item()
        project = similarity < threshold
        if project:
            cb = c @ b.to(torch.float32)
            new_b[name] = (cb if mode == "onto" else b.to(torch.float32) - cb).to(b.dtype)
        else:
            new_b[name] = b.clone()
        decisions.append(LayerDecision(name, similarity, project))
    return new_b, decisions


def _weights(model: str) -> dict:
    from safetensors.torch import load_file

    from tasksafe.models.registry import resolve_model

    folder = Path(resolve_model(model))
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UserError(f"no safetensors weights in {folder}")
    weights = {}
    for file in files:
        weights.update(load_file(str(file)))
    return weights


def project_adapter(adapter_dir: str | Path, aligned: str, unaligned: str, output_adapter: str | Path,
                    threshold: float = 0.5, mode: str = "onto") -> dict:
    """Project a LoRA adapter's update layer by layer into `output_adapter` (a copy of the
    adapter folder with new B matrices); returns the similarity and decision per layer."""
    from safetensors.torch import load_file, save_file

    adapter_dir, output_adapter = Path(adapter_dir), Path(output_adapter)
    adapter = adapter_dir / "adapter_model.safetensors"
    if not adapter.is_file():
        raise UserError(f"{adapter_dir} has no LoRA adapter (adapter_model.safetensors); Safe LoRA needs a LoRA run")
    tensors = load_file(str(adapter))
    aligned_w, unaligned_w = _weights(aligned), _weights(unaligned)
    lora_a, lora_b, base_keys = {}, {}, {}
    for key, tensor in tensors.items():
        if ".lora_A." in key:
            layer = key.split(".lora_A.")[0]
            lora_a[layer] = tensor
            base_keys[layer] = layer.removeprefix("base_model.model.") + ".weight"
        elif ".lora_B." in key:
            lora_b[key.split(".lora_B.")[0]] = tensor
    missing = [k for k in base_keys.values() if k not in aligned_w or k not in unaligned_w]
    if missing:
        raise UserError(f"the base weights lack {missing[0]} (and {len(missing) - 1} more); are they the run's base model?")
    new_b, decisions = safelora_project(lora_a, lora_b, {layer: aligned_w[k] for layer, k in base_keys.items()},
                                        {layer: unaligned_w[k] for layer, k in base_keys.items()}, threshold, mode)
    shutil.copytree(adapter_dir, output_adapter, dirs_exist_ok=True)
    projected = dict(tensors)
    for key in tensors:
        if ".lora_B." in key:
            projected[key] = new_b[key.split(".lora_B.")[0]].contiguous()
    save_file(projected, str(output_adapter / "adapter_model.safetensors"))
    return {"source_adapter": str(adapter_dir), "aligned": aligned, "unaligned": unaligned, "threshold": threshold,
            "mode": mode, "layers": len(decisions), "projected": sum(d.projected for d in decisions),
            "decisions": [{"layer": d.name, "similarity": d.similarity, "projected": d.projected} for d in decisions]}


def apply_safelora(run_dir: str | Path, aligned: str, unaligned: str, output_dir: str | Path,
                   threshold: float = 0.5, mode: str = "onto") -> dict:
    """A new run directory `output_dir`: the run's files with its adapter projected, and
    `safelora.json` (similarity and decision per layer). `tasksafe safelora` runs this."""
    run_dir, output_dir = Path(run_dir), Path(output_dir)
    shutil.copytree(run_dir, output_dir, ignore=shutil.ignore_patterns("checkpoints", "adapter"), dirs_exist_ok=True)
    report = project_adapter(run_dir / "adapter", aligned, unaligned, output_dir / "adapter", threshold, mode)
    write_json(output_dir / "safelora.json", {"source_run": str(run_dir), **report})
    return report


class SafeLoRAOptions(Options):
    threshold: float = Field(0.5, ge=-1, le=1, description="layers whose update has a lower cosine similarity "
                                                            "to its projection are projected")
    mode: Literal["onto", "away"] = Field("onto", description="onto: Safe LoRA; away: remove the aligned part")
    unaligned: str | None = Field(None, description="the base model before alignment (default: what the base "
                                                     "model's registry entry names)")


def post_train(run_dir: Path, base_model: str, options: dict[str, Any]) -> dict:
    """The post-training step: project `run_dir/adapter` in place (the trained adapter is kept
    as `adapter-trained`), against the base model and the unaligned model its registry entry
    names. Rerunning after a crash redoes the projection from the kept adapter."""
    from tasksafe.models.registry import MODELS

    settings = SafeLoRAOptions.model_validate(options)
    unaligned = settings.unaligned or (MODELS.info(base_model).get("unaligned") if base_model in MODELS else None)
    if not unaligned:
        known = [m for m in MODELS if MODELS.info(m).get("unaligned")]
        raise UserError(f"safelora needs the unaligned weights of {base_model!r}; known for: {', '.join(known)}")
    trained, adapter = run_dir / "adapter-trained", run_dir / "adapter"
    if not trained.is_dir():
        adapter.rename(trained)
    staging = run_dir / ".adapter-projected.tmp"
    shutil.rmtree(staging, ignore_errors=True)
    report = project_adapter(trained, base_model, unaligned, staging, settings.threshold, settings.mode)
    shutil.rmtree(adapter, ignore_errors=True)
    staging.rename(adapter)
    write_json(run_dir / "safelora.json", report)
    return report


@register_mitigation("safelora", "post-hoc: project the LoRA update by the alignment direction", adds_examples=False,
                     options=SafeLoRAOptions, post_training=post_train)
def safelora(dataset: Sequence[ChatExample], pool: Sequence[SafetyPair], budget: Budget, seed: int,
             threshold: float = 0.5, mode: str = "onto", unaligned: str | None = None) -> MitigationResult:
    options = {"threshold": threshold, "mode": mode, "unaligned": unaligned}
    return MitigationResult(list(dataset), [], post_training={"name": "safelora", "options": options})
