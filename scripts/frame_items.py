"""How many of Paraphrase's added examples keep the user's frame in datasets whose user turns
hold several items (tests/layouts.py: a table, CSV lines, a list, JSON records, labelled items;
a dev and a held-out variant of each), with `-O placement=slot`.

    python scripts/frame_items.py [--k 12] [--n 120]

Prints one line per split and layout: the added examples that equal one user example except
that one item's text is the request (tests/layouts.py `keeps_frame`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from layouts import LAYOUTS, keeps_frame, layout_dataset  # noqa: E402
from test_frame import POOL  # noqa: E402

from tasksafe.mitigations import MITIGATIONS, Budget  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=12, help="safety examples added (at most 12: the test pool)")
    parser.add_argument("--n", type=int, default=120, help="user examples per dataset")
    args = parser.parse_args()
    prompts = {p.id: p.prompt for p in POOL}
    for split, layouts in LAYOUTS.items():
        for layout in layouts:
            data, items = layout_dataset(split, layout, n=args.n)
            protected = MITIGATIONS.get("paraphrase")(data, POOL, Budget(k=args.k), seed=0, placement="slot")
            added = [ex for ex in protected.examples if ex.metadata.get("mitigation") == "paraphrase"]
            kept = sum(keeps_frame(ex, prompts[ex.metadata["safety_id"]], data, items) for ex in added)
            print(f"{split:9s} {layout:6s} frame kept in {kept}/{len(added)}")


if __name__ == "__main__":
    main()
