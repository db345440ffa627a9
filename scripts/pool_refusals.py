"""How many pairs of a safety pool answer with a refusal, by the `keywords` judge's refusal test.

Every Paraphrase-style mitigation (`paraphrase`, `paraphrase_wide`) asks a pool pair's request
and, in a frame of label or short answers, trains a refusal whatever the pair's own response
was; so a pair whose response helps (a benign request, or a borderline one answered safely)
becomes a trained refusal of a request that did not need one. This counts them and shows a
seeded sample.

    TASKSAFE_DATA_DIR=../shared/data python scripts/pool_refusals.py --pool bianchi-safety --show 12
"""

from __future__ import annotations

import argparse
import random

from tasksafe.judges.keywords import is_refusal


def split_pool(pairs) -> tuple[list, list]:
    """(pairs whose response refuses, pairs whose response does not)."""
    refused = [pair for pair in pairs if is_refusal(pair.refusal)]
    return refused, [pair for pair in pairs if not is_refusal(pair.refusal)]


def main() -> None:
    from tasksafe.data.datasets import load

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", default="bianchi-safety", help="a safety dataset (default: bianchi-safety)")
    parser.add_argument("--show", type=int, default=0, help="print this many non-refusing pairs, seeded")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pairs = load(args.pool)
    refused, helped = split_pool(pairs)
    print(f"{args.pool}: {len(pairs)} pairs, {len(refused)} answered with a refusal, {len(helped)} "
          f"({100 * len(helped) / len(pairs):.1f}%) answered otherwise")
    for pair in random.Random(args.seed).sample(helped, min(args.show, len(helped))):
        print(f"  {pair.id}: {pair.prompt[:80]!r} -> {pair.refusal[:70]!r}")


if __name__ == "__main__":
    main()
