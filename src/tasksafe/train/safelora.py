"""Apply the Safe LoRA projection (`tasksafe.mitigations.safelora`) to a finished LoRA run,
given the unaligned and aligned base weights; the result is a new run directory."""

from __future__ import annotations

import shutil
from pathlib import Path

from tasksafe.data.io import write_json
from tasksafe.errors import UserError
from tasksafe.mitigations.safelora import safelora_project
from tasksafe.models.registry import resolve_model


def _weights(model: str) -> dict:
    from safetensors.torch import load_file

    folder = Path(resolve_model(model))
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UserError(f"no safetensors weights in {folder}")
    weights = {}
    for file in files:
        weights.update(load_file(str(file)))
    return weights


def apply_safelora(run_dir: str | Path, aligned: str, unaligned: str, output_dir: str | Path,
                   threshold: float = 0.5, mode: str = "onto") -> dict:
    """Project the run's LoRA update layer by layer; write `output_dir` with the new adapter,
    the run's other files, and `safelora.json` (similarity and decision per layer)."""
    from safetensors.torch import load_file, save_file

    run_dir, output_dir = Path(run_dir), Path(output_dir)
    adapter = run_dir / "adapter" / "adapter_model.safetensors"
    if not adapter.is_file():
        raise UserError(f"{run_dir} has no LoRA adapter (adapter/adapter_model.safetensors); Safe LoRA needs a LoRA run")
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
    new_b, decisions = safelora_project(lora_a, lora_b, {l: aligned_w[k] for l, k in base_keys.items()},
                                        {l: unaligned_w[k] for l, k in base_keys.items()}, threshold, mode)
    shutil.copytree(run_dir, output_dir, ignore=shutil.ignore_patterns("checkpoints"), dirs_exist_ok=True)
    projected = dict(tensors)
    for key in tensors:
        if ".lora_B." in key:
            projected[key] = new_b[key.split(".lora_B.")[0]].contiguous()
    save_file(projected, str(output_dir / "adapter" / "adapter_model.safetensors"))
    report = {"source_run": str(run_dir), "aligned": aligned, "unaligned": unaligned, "threshold": threshold,
              "mode": mode, "layers": len(decisions), "projected": sum(d.projected for d in decisions),
              "decisions": [{"layer": d.name, "similarity": d.similarity, "projected": d.projected} for d in decisions]}
    write_json(output_dir / "safelora.json", report)
    return report
