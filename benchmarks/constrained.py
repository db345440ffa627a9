"""Training cost of the `constrained` defence (the token-wise constrained objective, which adds a
forward pass of the reference model per batch) against plain LoRA on the same data, model and
settings, measured side by side in one run; target: at most 1.6x plain LoRA's step time.

    TASKSAFE_DATA_DIR=../shared/data python benchmarks/constrained.py [--model smollm2-135m] [--steps 8]

The runs alternate (plain, constrained, plain, constrained) so that a change in the machine's
load falls on both; each run's first step (warm-up) is left out. Ends with one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tasksafe.data.chat import write_chat_jsonl
from tasksafe.mitigations.base import Budget
from tasksafe.mitigations.protect import protect_file
from tasksafe.strategies import build_dataset
from tasksafe.train import FinetuneConfig, finetune

TARGET = 1.6


def seconds_per_step(model: str, data: Path, out: Path, steps: int, batch: int, method: str) -> float:
    from train_throughput import StepTimer  # this folder's own benchmark, beside this script

    timer = StepTimer()
    finetune(FinetuneConfig(model=model, data=str(data), output_dir=str(out), max_steps=steps, batch_size=batch,
                            method=method, logging_steps=steps, save_steps=10**6, lora_r=16, lr=3e-4),
             progress=False, callbacks=[timer])
    return sum(timer.durations[1:]) / len(timer.durations[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--method", choices=["lora", "full"], default="lora")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"none": [], "constrained": []}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "user.jsonl"
        write_chat_jsonl(source, build_dataset("sst2", "aoa", n=args.batch * args.steps, seed=0))
        for mitigation in times:
            protect_file(source, Path(tmp) / f"{mitigation}.jsonl", mitigation, Budget(k=0))
        for repeat in range(args.repeats):
            for mitigation in times:
                times[mitigation].append(seconds_per_step(args.model, Path(tmp) / f"{mitigation}.jsonl",
                                                          Path(tmp) / f"{mitigation}-{repeat}", args.steps,
                                                          args.batch, args.method))
    plain, constrained = (min(times[m]) for m in ("none", "constrained"))
    ratio = constrained / plain
    print(f"model {args.model}, {args.method} (r=16 for LoRA), batch {args.batch}, SST-2 aoa, {args.steps} steps x "
          f"{args.repeats} runs each, alternating; the faster run of each")
    print(f"{'plain LoRA' if args.method == 'lora' else 'plain full':<24}{plain:8.2f} s/step   {times['none']}")
    print(f"{'constrained':<24}{constrained:8.2f} s/step   {times['constrained']}")
    print(f"{'ratio':<24}{ratio:8.2f}        (target <= {TARGET})")
    print(json.dumps({"benchmark": "constrained", "model": args.model, "method": args.method,
                      "plain_s_per_step": round(plain, 3), "constrained_s_per_step": round(constrained, 3),
                      "ratio": round(ratio, 3), "target_ratio": TARGET, "target": "<=", "pass": ratio <= TARGET}))


if __name__ == "__main__":
    main()
