"""How many pairs of a safety pool answer with a refusal, by the `keywords` judge's refusal test.

Every Paraphrase-style mitigation (`paraphrase`, `paraphrase_wide`) asks a pool pair's request
and, in a frame of label or short answers, trains a refusal whatever the pair's own response
was; so a pair whose response helps (a benign request, or a borderline one answered safely)
becomes a trained refusal of a request that did not need one. This counts them in the pool,
shows a seeded sample, and counts them among the pairs a protected set drew (its sidecar's
`safety_ids`). `paraphrase_wide -O pool_filter=refusals` draws only the refusing ones.

    TASKSAFE_DATA_DIR=../shared/data python scripts/pool_refusals.py --pool bianchi-safety --show 12
    TASKSAFE_DATA_DIR=../shared/data python scripts/pool_refusals.py --drawn out/prefix-crossover/protected-items*.meta.json
"""

from __future__ import annotations

import argparse
import json
import random

from tasksafe.mitigations.paraphrase_wide import answers_with_refusal


def split_pool(pairs) -> tuple[list, list]:
    """(pairs whose response refuses, pairs whose response does not)."""
    refused, helped = [], []
    for pair in pairs:
        (refused if answers_with_refusal(pair) else helped).append(pair)
    return refused, helped


def main() -> None:
    from tasksafe.data.datasets import load

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", default="bianchi-safety", help="a safety dataset (default: bianchi-safety)")
    parser.add_argument("--show", type=int, default=0, help="print this many non-refusing pairs, seeded")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--drawn", nargs="*", default=[], metavar="SIDECAR",
                        help="protected sets' sidecars (*.meta.json): how many of the pairs each drew do not refuse")
    args = parser.parse_args()
    pairs = load(args.pool)
    refused, helped = split_pool(pairs)
    print(f"{args.pool}: {len(pairs)} pairs, {len(refused)} answered with a refusal, {len(helped)} "
          f"({100 * len(helped) / len(pairs):.1f}%) answered otherwise")
    for pair in random.Random(args.seed).sample(helped, min(args.show, len(helped))):
        print(f"  {pair.id}: {pair.prompt[:80]!r} -> {pair.refusal[:70]!r}")
    helped_ids = {pair.id for pair in helped}
    for sidecar in args.drawn:
        with open(sidecar) as handle:
            drawn = json.load(handle)["safety_ids"]
        print(f"{sidecar}: {sum(i in helped_ids for i in drawn)} of the {len(drawn)} drawn pairs answered otherwise")


if __name__ == "__main__":
    main()
