"""Load a causal LM and its tokenizer (fp32 on CPU), optionally with a LoRA adapter."""

from __future__ import annotations

from pathlib import Path

from tasksafe.errors import UserError
from tasksafe.models.registry import resolve_model


def load_model(name: str, adapter: str | Path | None = None, device: str | None = None, dtype: str = "auto"):
    """(model, tokenizer) for a registered name or HF path/id; `adapter` is a PEFT folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model(name)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch_dtype = torch.float32 if dtype == "auto" and device == "cpu" else (
        torch.bfloat16 if dtype == "auto" else getattr(torch, dtype))
    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    except OSError as err:
        raise UserError(f"cannot load model {name!r}: {err}".splitlines()[0]) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter))
    model.to(device).eval()
    return model, tokenizer
