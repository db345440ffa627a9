"""Protect a 100,000-example dataset and compare with the floor: merely reading and writing
the same file. Target: protect / floor <= 3.

    TASKSAFE_DATA_DIR=../shared/data python benchmarks/protect.py [--n 100000] [--fraction 0.02]

Prints both times side by side (best of --repeats runs each, interleaved) and ends with one
line of JSON holding the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import tempfile
import time
from pathlib import Path

from tasksafe.data.chat import read_examples, write_chat_jsonl
from tasksafe.mitigations import MITIGATIONS, Budget, safety_pool
from tasksafe.strategies import build_dataset


def make_dataset(path: Path, n: int) -> None:
    """n AOA-formatted SST-2 examples (the train split repeated when n exceeds it)."""
    base = build_dataset("sst2", "aoa", split="train", seed=0)
    write_chat_jsonl(path, itertools.islice(itertools.cycle(base), n))


def floor(source: Path, target: Path) -> float:
    start = time.perf_counter()
    write_chat_jsonl(target, read_examples(source))
    return time.perf_counter() - start


def protect(source: Path, target: Path, fraction: float) -> float:
    safety_pool.cache_clear()  # count loading and de-duplicating the pool, as the CLI does
    start = time.perf_counter()
    examples = read_examples(source)
    result = MITIGATIONS.get("paraphrase")(examples, safety_pool().pairs, Budget(fraction=fraction), 0)
    write_chat_jsonl(target, result.examples)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--fraction", type=float, default=0.02)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "user.jsonl"
        make_dataset(source, args.n)
        floors, protects = [], []
        for _ in range(args.repeats):
            floors.append(floor(source, Path(tmp) / "copy.jsonl"))
            protects.append(protect(source, Path(tmp) / "protected.jsonl", args.fraction))
        size_mb = source.stat().st_size / 2**20
    best_floor, best_protect = min(floors), min(protects)
    ratio = best_protect / best_floor
    print(f"dataset: {args.n} examples, {size_mb:.1f} MiB; paraphrase budget {args.fraction:.0%}")
    print(f"{'read + write (floor)':<24}{best_floor:8.2f} s")
    print(f"{'protect (paraphrase)':<24}{best_protect:8.2f} s")
    print(f"{'ratio':<24}{ratio:8.2f}   (target <= 3)")
    print(json.dumps({"benchmark": "protect", "examples": args.n, "fraction": args.fraction,
                      "floor_s": round(best_floor, 3), "protect_s": round(best_protect, 3),
                      "ratio": round(ratio, 3), "target_ratio": 3.0, "target": "<=", "pass": ratio <= 3.0}))


if __name__ == "__main__":
    main()
