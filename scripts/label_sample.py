"""Draw the replies to label by hand: a seeded, stratified sample of the organism's judged
replies (`replies.jsonl` from `tasksafe align`, `experiments/diluted_attack.py --replies`,
or a grid's stored samples with `--results DIR`), the same number from each cell, harmful
prompts only, each with an id and a split (a quarter `dev`, the rest `heldout`; `--split`
puts them all in one). Writes JSONL lines with "label": null for a person to fill in
(rubric: docs/evaluation.md).

    python scripts/label_sample.py ORGANISM/replies.jsonl diluted-replies.jsonl -n 400 -o to-label.jsonl
    python scripts/label_sample.py --results results/strategies --strategy autoif,prefix -n 60 -o to-label.jsonl
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
from collections import defaultdict

HARMFUL_CELLS = ("advbench",)  # organism/<set> cells other than these asked benign or safe prompts


def stored_replies(results_dir: str, strategies: set[str] | None):
    """A grid's harmful-prompt samples as replies records, one cell per (grid cell, sample kind):
    "STRATEGY-MITIGATION/harmful-in-format" and so on (base cells: "base-STRATEGY/...")."""
    from tasksafe.report.rejudge import stored_samples

    for row, samples in stored_samples(results_dir):
        config = row.config
        if strategies and config.strategy not in strategies:
            continue
        name = f"base-{config.strategy}" if config.kind == "base" else f"{config.strategy}-{config.mitigation_label()}"
        for sample in samples:
            if sample.kind.startswith("harmful-"):
                yield {"cell": f"{name}/{sample.kind}", "messages": sample.prompt,
                       "response": sample.response}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*")
    parser.add_argument("--results", help="a results store: draw from its cells' stored samples")
    parser.add_argument("--strategy", help="with --results: only these strategies (comma-separated)")
    parser.add_argument("--split", choices=("dev", "heldout", "blind"),
                        help="put every drawn reply in this split (blind: drawn after the judges last changed)")
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("-o", "--output", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cells: dict[str, list[dict]] = defaultdict(list)
    if args.results:
        for record in stored_replies(args.results, set(args.strategy.split(",")) if args.strategy else None):
            cells[record["cell"]].append(record)
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                cell = record["cell"]
                if cell.startswith("organism/") and "advbench" not in cell:
                    continue
                cells[cell].append(record)
    rng = random.Random(f"labels:{args.seed}")
    per_cell, rest = divmod(args.n, len(cells))
    chosen = []
    for i, cell in enumerate(sorted(cells)):
        records = cells[cell]
        chosen += [(cell, r) for r in rng.sample(records, min(len(records), per_cell + (i < rest)))]
    rng.shuffle(chosen)
    with open(args.output, "w", encoding="utf-8") as out:
        for index, (cell, record) in enumerate(chosen):
            prompt = record["messages"][-1]["content"] if record["messages"][-1]["role"] == "user" else \
                record["messages"][-2]["content"]
            uid = hashlib.sha256(f"{cell}\n{json.dumps(record['messages'])}".encode()).hexdigest()[:10]
            out.write(json.dumps({"id": uid, "cell": cell, "split": args.split or ("dev" if index % 4 == 0 else "heldout"),
                                  "messages": record["messages"], "prompt": prompt, "response": record["response"],
                                  "label": None}, ensure_ascii=False) + "\n")
    print(f"wrote {len(chosen)} replies from {len(cells)} cells to {args.output}")


if __name__ == "__main__":
    main()
