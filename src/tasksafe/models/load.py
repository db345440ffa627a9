"""Load a causal LM and its tokenizer in the precision asked for (tasksafe.models.precision),
optionally with a LoRA adapter."""

from __future__ import annotations

from pathlib import Path

from tasksafe.errors import UserError
from tasksafe.models.registry import resolve_model


def load_model(name: str, adapter: str | Path | None = None, device: str | None = None, precision: str = "fp32",
               merge_adapter: bool = False):
    """(model, tokenizer) for a registered name or HF path/id; `adapter` is a PEFT folder.
    `precision` is `fp32`, `bf16` or `auto`; an adapter's weights are kept in fp32 (PEFT's
    default), its input cast to them, so a bf16 model with an fp32 adapter adds the adapter's
    update at full precision. `merge_adapter` (for generation) adds the adapter into the fp32
    weights first and then casts the sum, so no adapter computation is left per token; the
    sum is rounded to bf16 once, as the base weights alone would be."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tasksafe.models.precision import torch_dtype

    path = resolve_model(name)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch_dtype(precision, device)
    merge = merge_adapter and adapter is not None
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32 if merge else dtype)
    except OSError as err:
        raise UserError(f"cannot load model {name!r}: {err}".splitlines()[0]) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter), autocast_adapter_dtype=True)
        if merge:
            model = model.merge_and_unload().to(dtype)
    model.to(device).eval()
    return model, tokenizer
