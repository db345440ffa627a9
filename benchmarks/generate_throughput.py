"""Generation throughput of the `hf` backend (length-sorted, left-padded batches, KV cache)
next to one-prompt-at-a-time `model.generate` on the same prompts and model; target ratio
>= 3. Both are greedy, and the script checks that they produce the same texts.

    TASKSAFE_DATA_DIR=../shared/data python benchmarks/generate_throughput.py [--model smollm2-135m] [--n 48]

Ends with one line of JSON holding its figures.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from tasksafe.data.datasets import load
from tasksafe.generate import GenerationParams, HFBackend


def one_at_a_time(backend: HFBackend, conversations, max_new_tokens: int) -> tuple[list[str], int, float]:
    tokenizer, model = backend.tokenizer, backend.model
    texts, tokens = [], 0
    start = time.perf_counter()
    for conversation in conversations:
        ids = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, return_tensors="pt",
                                            return_dict=True)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id)
        new = out[0, ids["input_ids"].shape[1]:]
        tokens += int((new != tokenizer.pad_token_id).sum())
        texts.append(tokenizer.decode(new, skip_special_tokens=True).strip())
    return texts, tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    backend = HFBackend.from_name(args.model)
    conversations = [[{"role": "user", "content": p.prompt}] for p in load("advbench")[: args.n]]
    params = GenerationParams(max_new_tokens=args.max_new_tokens)
    backend.generate(conversations[:2], params)  # warm-up
    start = time.perf_counter()
    batched = backend.generate(conversations, params)
    batched_seconds = time.perf_counter() - start
    single, tokens, single_seconds = one_at_a_time(backend, conversations, args.max_new_tokens)
    same = sum(a == b for a, b in zip(batched, single))
    batched_rate, single_rate = tokens / batched_seconds, tokens / single_seconds
    ratio = batched_rate / single_rate
    print(f"model {args.model}, {args.n} AdvBench prompts, greedy, {args.max_new_tokens} new tokens, {tokens} tokens")
    print(f"{'one at a time (generate)':<28}{single_rate:10.1f} tokens/s")
    print(f"{'hf backend (batched)':<28}{batched_rate:10.1f} tokens/s")
    print(f"{'ratio':<28}{ratio:10.2f}   (target >= 3)")
    print(f"{'identical outputs':<28}{same:>10} of {args.n}")
    print(json.dumps({"benchmark": "generate_throughput", "model": args.model, "prompts": args.n,
                      "single_tokens_per_s": round(single_rate, 2), "batched_tokens_per_s": round(batched_rate, 2),
                      "ratio": round(ratio, 3), "target_ratio": 3.0, "target": ">=", "identical_outputs": same,
                      "pass": ratio >= 3 and same == args.n}))


if __name__ == "__main__":
    main()
