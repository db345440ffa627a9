"""A stand-in for the organism: its architecture and tokenizer with random weights, published
as `aligned` in a separate models folder. Cells run on it at full size exercise every stage on
the GPU machine and time it (a random model always decodes to the token limit, so an upper
bound) while the real weights are still being uploaded. Never a result: its folder is not the
organism's, and its cells go to a store that is thrown away.

    python scripts/device/stand_in.py .gpu/fake /tmp/standin/models
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM


def main(files: Path, models: Path) -> None:
    folder = models / "aligned-f4e970bb4694"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(files))
    model.save_pretrained(folder, safe_serialization=True)
    for name in ("generation_config.json", "chat_template.jinja", "tokenizer_config.json"):
        shutil.copy(files / name, folder / name)
    shutil.copy(Path("/tmp/models/smollm2-tokenizer/tokenizer.json"), folder / "tokenizer.json")
    (models / "aligned.json").write_text(json.dumps({"path": str(folder), "key": "f4e970bb4694", "recipe_version": 4}))
    if not (models / "smollm2-tokenizer").exists():
        (models / "smollm2-tokenizer").symlink_to("/tmp/models/smollm2-tokenizer")
    print(f"stand-in organism at {folder}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
