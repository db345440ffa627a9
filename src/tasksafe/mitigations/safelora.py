"""Safe LoRA (Hsu et al., 2024) as a pure tensor function.

For each layer, the alignment matrix V = W_aligned - W_unaligned spans the directions that
alignment moved. Its projection C = V V^T / ||V||_F maps an update onto those directions.
A LoRA update dW = B A whose projection C dW has a cosine similarity to dW below the
threshold has drifted away from alignment; its B is replaced by C B, so the layer's update
becomes C dW. Layers above the threshold keep their update. `mode="away"` instead removes
the aligned component, dW - C dW (documented alternative, not the paper's default).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
