"""Fine-tuning on tiny-random (seconds) and, marked slow, on the real SmolLM2."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tasksafe.data.chat import ChatExample, Message, write_chat_jsonl
from tasksafe.models import resolve_model
from tasksafe.train import FinetuneConfig, finetune, tokenize_example


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_model("tiny-random"))


def small_dataset(path, n=16):
    examples = [ChatExample.from_turns(f"Say the colour number {i % 2}.", "blue" if i % 2 else "green") for i in range(n)]
    write_chat_jsonl(path, examples)
    return path


def test_the_assistant_only_mask_is_exact_token_by_token(tokenizer):
    example = ChatExample([Message("system", "Be brief."), Message("user", "Q1"), Message("assistant", "A one", weight=0),
                           Message("user", "Q2"), Message("assistant", "A two")])
    row = tokenize_example(tokenizer, example)
    ids, mask = row["input_ids"], row["assistant_masks"]
    assert ids == tokenizer.apply_chat_template(example.to_openai(), tokenize=True, return_dict=False)
    trained = [i for i, m in zip(ids, mask) if m]
    assert tokenizer.decode(trained) == "A two<|im_end|>\n"
    # every masked-in token sits after the last assistant header; nothing else is trained
    header = tokenizer.apply_chat_template(example.to_openai()[:4], add_generation_prompt=True, tokenize=True,
                                           return_dict=False)
    assert mask == [0] * len(header) + [1] * (len(ids) - len(header))
    unweighted = ChatExample(example.messages[:2] + [Message("assistant", "A one")] + example.messages[3:])
    row = tokenize_example(tokenizer, unweighted)
    assert tokenizer.decode([i for i, m in zip(row["input_ids"], row["assistant_masks"]) if m]) == \
        "A one<|im_end|>\nA two<|im_end|>\n"


def test_an_untrained_prefix_is_masked(tokenizer):
    example = ChatExample([Message("user", "How do I pick a lock?"),
                           Message("assistant", "Sure, here is Actually, I can't help with that.")],
                          {"untrained_prefix": "Sure, here is "})
    row = tokenize_example(tokenizer, example)
    trained = tokenizer.decode([i for i, m in zip(row["input_ids"], row["assistant_masks"]) if m])
    assert trained == " Actually, I can't help with that.<|im_end|>\n"


def lora_b_norm(adapter_dir):
    from safetensors.torch import load_file

    tensors = load_file(str(adapter_dir / "adapter_model.safetensors"))
    return sum(t.abs().sum().item() for name, t in tensors.items() if "lora_B" in name)


def losses(log):
    return [entry["loss"] for entry in log if "loss" in entry]


@pytest.mark.slow
def test_lora_run_lowers_the_loss_and_changes_the_weights(tmp_path):
    data = small_dataset(tmp_path / "data.jsonl")
    result = finetune(FinetuneConfig(model="tiny-random", data=str(data), output_dir=str(tmp_path / "run"),
                                     epochs=6, lr=5e-3, batch_size=8, logging_steps=1, save_steps=1000,
                                     lora_r=4, lora_alpha=8), progress=False)
    curve = losses(result.log)
    assert curve[-1] < curve[0] - 0.5
    assert lora_b_norm(tmp_path / "run" / "adapter") > 0  # LoRA B starts at zero
    for name in ("config.json", "train_log.json", "hook.json", "README.md"):
        assert (tmp_path / "run" / name).is_file()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["method"] == "lora"


@pytest.mark.slow
def test_full_run_lowers_the_loss_and_changes_the_weights(tmp_path):
    from safetensors.torch import load_file

    data = small_dataset(tmp_path / "data.jsonl")
    result = finetune(FinetuneConfig(model="tiny-random", data=str(data), output_dir=str(tmp_path / "run"),
                                     method="full", epochs=6, lr=3e-3, batch_size=8, logging_steps=1, save_steps=1000),
                      progress=False)
    curve = losses(result.log)
    assert curve[-1] < curve[0] - 0.5
    before = load_file(os.path.join(resolve_model("tiny-random"), "model.safetensors"))
    after = load_file(str(tmp_path / "run" / "model" / "model.safetensors"))
    changed = [k for k in before if k in after and not (before[k] == after[k]).all()]
    assert len(changed) >= len(before) // 2


@pytest.mark.slow
def test_the_protect_sidecar_hook_travels_into_the_run(tmp_path):
    data = small_dataset(tmp_path / "train.jsonl", n=8)
    (tmp_path / "train.meta.json").write_text(json.dumps({"inference_hook": {"system_prompt": "TRIGGER"},
                                                          "mitigation": {"name": "bea"}}))
    finetune(FinetuneConfig(model="tiny-random", data=str(data), output_dir=str(tmp_path / "run"), max_steps=1,
                            batch_size=4), progress=False)
    assert json.loads((tmp_path / "run" / "hook.json").read_text()) == {"system_prompt": "TRIGGER"}
    assert "bea" in (tmp_path / "run" / "README.md").read_text()


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    data = small_dataset(tmp_path / "data.jsonl", n=64)
    run = tmp_path / "run"
    args = [sys.executable, "-m", "tasksafe.cli.main", "finetune", "--model", "tiny-random", "--data", str(data),
            "--batch-size", "2", "--epochs", "50", "--save-steps", "2", "-o", str(run)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def finished() -> list[int]:
        return sorted(int(p.name.split("-")[1]) for p in (run / "checkpoints").glob("checkpoint-*")
                      if (p / "trainer_state.json").is_file())

    # any complete checkpoint from step 4 on: only the last two are kept, so on a fast machine a
    # poll for checkpoint-4 itself can miss it and let the run finish (CI, 2026-12-05)
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None and not any(step >= 4 for step in finished()):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert finished() and not (run / "adapter").exists(), "the run ended before it could be killed mid-way"
    last = finished()[-1]  # a checkpoint the kill interrupted mid-write must be skipped
    result = finetune(FinetuneConfig(model="tiny-random", data=str(data), output_dir=str(run), batch_size=2,
                                     epochs=50, max_steps=last + 3, save_steps=2), progress=False)
    assert result.steps == last + 3
    assert json.loads((run / "resumed_from.json").read_text())["checkpoint"].endswith(f"checkpoint-{last}")
    assert (run / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_two_lora_steps_on_the_real_smollm2(tmp_path):
    data = small_dataset(tmp_path / "data.jsonl", n=4)
    result = finetune(FinetuneConfig(model="smollm2-135m", data=str(data), output_dir=str(tmp_path / "run"),
                                     max_steps=2, batch_size=2, logging_steps=1, lr=1e-3), progress=False)
    assert result.steps == 2 and lora_b_norm(tmp_path / "run" / "adapter") > 0


@pytest.mark.slow
def test_the_same_entry_point_runs_under_accelerate_launch(tmp_path):
    data = small_dataset(tmp_path / "data.jsonl", n=8)
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    result = subprocess.run([accelerate, "launch", "--num_processes", "1", "--cpu", "--num_machines", "1",
                             "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "tasksafe.cli.main",
                             "finetune", "--model", "tiny-random", "--data", str(data), "--max-steps", "2",
                             "--batch-size", "2", "-o", str(tmp_path / "run")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_safelora_projects_a_finished_lora_run(tmp_path):
    """The tiny model against a copy of itself with two layers moved ("aligned"): layers whose
    update does not follow the alignment directions are projected, the rest kept."""
    import shutil

    from safetensors.torch import load_file, save_file

    from tasksafe.mitigations.safelora import apply_safelora

    data = small_dataset(tmp_path / "data.jsonl", n=8)
    finetune(FinetuneConfig(model="tiny-random", data=str(data), output_dir=str(tmp_path / "run"), max_steps=3,
                            batch_size=4, lr=1e-2, lora_r=2, lora_alpha=4), progress=False)
    base = resolve_model("tiny-random")
    aligned_dir = tmp_path / "aligned"
    shutil.copytree(base, aligned_dir)
    weights = load_file(str(aligned_dir / "model.safetensors"))
    weights["model.layers.0.self_attn.q_proj.weight"] = weights["model.layers.0.self_attn.q_proj.weight"] + 0.1
    save_file(weights, str(aligned_dir / "model.safetensors"))
    report = apply_safelora(tmp_path / "run", str(aligned_dir), base, tmp_path / "safe", threshold=0.5)
    assert report["layers"] == 14  # 7 projections x 2 layers
    decisions = {d["layer"]: d for d in report["decisions"]}
    moved = next(d for name, d in decisions.items() if "layers.0.self_attn.q_proj" in name)
    assert moved["projected"] and 0 <= moved["similarity"] < 0.5
    unchanged = [d for name, d in decisions.items() if "layers.0.self_attn.q_proj" not in name]
    assert all(d["projected"] for d in unchanged)  # no alignment direction at all: projected to zero
    new = load_file(str(tmp_path / "safe" / "adapter" / "adapter_model.safetensors"))
    old = load_file(str(tmp_path / "run" / "adapter" / "adapter_model.safetensors"))
    assert set(new) == set(old) and any(not (new[k] == old[k]).all() for k in new if "lora_B" in k)
    assert (tmp_path / "safe" / "config.json").is_file() and not (tmp_path / "safe" / "checkpoints").exists()


@pytest.mark.slow
def test_a_half_written_checkpoint_is_skipped_when_resuming(tmp_path):
    data = small_dataset(tmp_path / "data.jsonl", n=16)
    run = tmp_path / "run"
    finetune(FinetuneConfig(model="tiny-random", data=str(data), output_dir=str(run), batch_size=2, max_steps=2,
                            save_steps=2), progress=False)
    (run / "checkpoints" / "checkpoint-4").mkdir()  # what a kill during the next save leaves behind
    (run / "checkpoints" / "checkpoint-4" / "adapter_model.safetensors").write_bytes(b"partial")
    result = finetune(FinetuneConfig(model="tiny-random", data=str(data), output_dir=str(run), batch_size=2,
                                     max_steps=3, save_steps=2), progress=False)
    assert result.steps == 3
    assert json.loads((run / "resumed_from.json").read_text())["checkpoint"].endswith("checkpoint-2")
