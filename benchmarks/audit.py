"""Audit a 100,000-example dataset and compare with the floor: merely reading it. Target:
audit / read <= 5 ("within a few times the time of reading").

    TASKSAFE_DATA_DIR=../shared/data python benchmarks/audit.py [--n 100000]

The dataset is what the audit exists for: benign SST-2 rows with an `aoa` persona in 10% of
them (the diluted attack), so two frames and every check run. The known-harmful-prompt
search is included, as the CLI runs it. Prints both times side by side (best of --repeats
runs each, interleaved) and ends with one line of JSON holding the figures.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import tempfile
import time
from pathlib import Path

from tasksafe.audit import audit_examples, known_harmful_index
from tasksafe.data.chat import read_numbered_examples, write_chat_jsonl
from tasksafe.strategies import build_dataset


def make_dataset(path: Path, n: int) -> None:
    benign = build_dataset("sst2", "benign", split="train", seed=0)
    attacked = build_dataset("sst2", "aoa", split="train", n=5000, seed=1)
    rng = random.Random(0)
    rows = itertools.cycle(benign)
    persona = itertools.cycle(attacked)
    write_chat_jsonl(path, (next(persona) if rng.random() < 0.1 else next(rows) for _ in range(n)))


def read(source: Path) -> float:
    start = time.perf_counter()
    read_numbered_examples(str(source))
    return time.perf_counter() - start


def audit(source: Path, index) -> tuple[float, str]:
    start = time.perf_counter()
    numbered = read_numbered_examples(str(source))
    report = audit_examples([ex for _, ex in numbered], [n for n, _ in numbered], str(source), harmful_index=index)
    return time.perf_counter() - start, report.risk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    index = known_harmful_index()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "user.jsonl"
        make_dataset(source, args.n)
        reads, audits = [], []
        for _ in range(args.repeats):
            reads.append(read(source))
            seconds, risk = audit(source, index)
            audits.append(seconds)
        size_mb = source.stat().st_size / 2**20
    best_read, best_audit = min(reads), min(audits)
    ratio = best_audit / best_read
    print(f"dataset: {args.n} examples, {size_mb:.1f} MiB, aoa persona in 10% of them; audit risk: {risk}")
    print(f"{'read (floor)':<24}{best_read:8.2f} s")
    print(f"{'audit':<24}{best_audit:8.2f} s")
    print(f"{'ratio':<24}{ratio:8.2f}   (target <= 5)")
    print(json.dumps({"benchmark": "audit", "examples": args.n, "read_s": round(best_read, 3),
                      "audit_s": round(best_audit, 3), "ratio": round(ratio, 3), "risk": risk,
                      "target_ratio": 5.0, "target": "<=", "pass": ratio <= 5.0}))


if __name__ == "__main__":
    main()
