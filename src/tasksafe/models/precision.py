"""Which number format the weights compute in: `fp32` (the default), `bf16`, or `auto` (bf16
where this machine runs it faster than fp32: a CUDA device with bf16, or a CPU with AVX-512
BF16 or AMX instructions; fp32 elsewhere). fp32 is the default because bf16 can change
verdicts; `benchmarks/cell.py` measures how many, side by side, on the machine at hand.

What bf16 means where:
- training (LoRA): the frozen base weights are held in bf16, the adapter weights, their
  gradients and the optimiser state stay fp32, the loss is computed in fp32;
- full fine-tuning trains in fp32 whatever the setting (bf16 master weights lose small
  updates), so `auto` means fp32 there;
- generation and log-likelihood scoring: the model's weights in bf16 (norms and softmax upcast
  inside the model, as transformers' Llama does).
"""

from __future__ import annotations

import functools
from typing import Literal

Precision = Literal["auto", "bf16", "fp32"]
PRECISIONS: tuple[str, ...] = ("auto", "bf16", "fp32")
PRECISION_HELP = ("fp32 (the default); auto: bf16 where this machine has fast bf16 (CUDA with bf16, or a CPU with "
                  "AVX-512 BF16 or AMX), else fp32; bf16. bf16 can change verdicts: benchmarks/cell.py measures how many")
"""The one description of the setting, for every config that has it (training, evaluation)."""


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    cpu = getattr(torch._C, "_cpu", None)
    if cpu is not None and any(hasattr(cpu, name) for name in probes):
        return any(getattr(cpu, name, lambda: False)() for name in probes)
    try:
        flags = open("/proc/cpuinfo", encoding="ascii", errors="replace").read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def resolve(precision: str, device: str = "cpu") -> Literal["bf16", "fp32"]:
    """`auto` made concrete for `device`; `bf16` and `fp32` are kept as asked."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision != "auto":
        return precision  # type: ignore[return-value]
    if device.startswith("cuda"):
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def torch_dtype(precision: str, device: str = "cpu"):
    import torch

    return torch.bfloat16 if resolve(precision, device) == "bf16" else torch.float32
