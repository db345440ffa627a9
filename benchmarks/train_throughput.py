"""Training throughput of `tasksafe finetune`'s loop (TRL SFTTrainer + PEFT LoRA) next to a
bare PyTorch forward/backward loop on the same model, batches, LoRA and precision (the
default, `auto`: bf16 base weights where the CPU has bf16 matrix instructions); target ratio
>= 0.9. Also reports model FLOPs utilisation against this machine's matrix-multiply rate in
that precision, measured in the same run.

    TASKSAFE_DATA_DIR=../shared/data python benchmarks/train_throughput.py [--model smollm2-135m] [--steps 6]

Tokens counted are the non-padding tokens of each batch. Model FLOPs per token of a LoRA
step are 4 x parameters (forward 2N, backward through the activations 2N; frozen weights get
no gradients), not the 6N of full training. Ends with one line of JSON holding its figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from tasksafe.data.chat import write_chat_jsonl
from tasksafe.models.load import load_model
from tasksafe.strategies import build_dataset
from tasksafe.train import FinetuneConfig, finetune, tokenize_dataset
from tasksafe.train.sft import train_precision

PRECISION = train_precision(FinetuneConfig(data="-", output_dir="-"), "cpu")  # what `tasksafe finetune` uses here


def matmul_flops_per_second(size: int = 1024, repeats: int = 10, dtype=torch.float32) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    torch.mm(a, b)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


class StepTimer:
    """Times each optimiser step of the Trainer (data loading, forward, backward, update)."""

    def __init__(self):
        self.durations: list[float] = []
        self.tokens: list[int] = []
        self._start, self._seen = 0.0, 0

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.durations.append(time.perf_counter() - self._start)
        self.tokens.append(state.num_input_tokens_seen - self._seen)
        self._seen = state.num_input_tokens_seen

    def __getattr__(self, name):  # every other TrainerCallback event: nothing to do
        if name.startswith("on_"):
            return lambda *args, **kwargs: None
        raise AttributeError(name)


def trainer_tokens_per_second(model: str, data: Path, out: Path, steps: int, batch: int, max_length: int) -> float:
    timer = StepTimer()
    result = finetune(FinetuneConfig(model=model, data=str(data), output_dir=str(out), max_steps=steps,
                                     batch_size=batch, max_length=max_length, logging_steps=steps, save_steps=10**6),
                      progress=False, callbacks=[timer])
    assert result.steps == steps
    # skip the first step (warm-up, allocations) like the bare loop does
    return sum(timer.tokens[1:]) / sum(timer.durations[1:])


def bare_tokens_per_second(model_name: str, data: Path, steps: int, batch: int, max_length: int) -> float:
    from peft import LoraConfig, get_peft_model

    from tasksafe.data.chat import read_examples

    defaults = FinetuneConfig()
    model, tokenizer = load_model(model_name, precision=PRECISION)
    model = get_peft_model(model, LoraConfig(r=defaults.lora_r, lora_alpha=defaults.lora_alpha,
                                             target_modules=defaults.lora_targets, task_type="CAUSAL_LM"))
    model.config.use_cache = False  # as in the Trainer: no KV cache while training
    model.train()
    dataset = tokenize_dataset(tokenizer, read_examples(data), max_length)
    rows = sorted(dataset, key=lambda r: r["length"])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=defaults.lr)
    pad = tokenizer.pad_token_id
    tokens, elapsed = 0, 0.0
    for step in range(steps):
        chunk = rows[(step * batch) % len(rows):][:batch] or rows[:batch]
        width = max(len(r["input_ids"]) for r in chunk)
        ids = torch.full((len(chunk), width), pad)
        labels = torch.full((len(chunk), width), -100)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, row in enumerate(chunk):
            n = len(row["input_ids"])
            ids[i, :n] = torch.tensor(row["input_ids"])
            attention[i, :n] = 1
            labels[i, :n] = torch.tensor([t if m else -100 for t, m in zip(row["input_ids"], row["assistant_masks"])])
        start = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step:  # the first step warms up
            elapsed += time.perf_counter() - start
            tokens += int(attention.sum())
    return tokens / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "train.jsonl"
        write_chat_jsonl(data, build_dataset("sst2", "autoif", n=args.batch * args.steps, seed=0))
        bare = bare_tokens_per_second(args.model, data, args.steps, args.batch, args.max_length)
        ours = trainer_tokens_per_second(args.model, data, Path(tmp) / "run", args.steps, args.batch, args.max_length)
    peak = matmul_flops_per_second(dtype=torch.bfloat16 if PRECISION == "bf16" else torch.float32)
    params = sum(p.numel() for p in load_model(args.model)[0].parameters())
    mfu = 4 * params * ours / peak
    ratio = ours / bare
    print(f"model {args.model} ({params / 1e6:.0f}M parameters), {PRECISION}, LoRA r={FinetuneConfig().lora_r}, "
          f"batch {args.batch}, max length {args.max_length}, {args.steps} steps")
    print(f"{'bare PyTorch loop':<28}{bare:10.1f} tokens/s")
    print(f"{'tasksafe finetune (TRL)':<28}{ours:10.1f} tokens/s")
    print(f"{'ratio':<28}{ratio:10.2f}   (target >= 0.9)")
    print(f"{PRECISION + ' matmul rate':<28}{peak / 1e9:10.1f} GFLOP/s")
    print(f"{'MFU (4N per LoRA token)':<28}{100 * mfu:10.1f} %")
    print(json.dumps({"benchmark": "train_throughput", "model": args.model, "bare_tokens_per_s": round(bare, 2),
                      "tasksafe_tokens_per_s": round(ours, 2), "ratio": round(ratio, 3), "target_ratio": 0.9, "target": ">=",
                      "matmul_gflops": round(peak / 1e9, 2), "mfu": round(mfu, 4), "pass": ratio >= 0.9}))


if __name__ == "__main__":
    main()
