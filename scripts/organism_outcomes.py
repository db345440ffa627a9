"""Each measurement of a built organism in three outcomes: the replies `tasksafe align` judged
(replies.jsonl beside alignment.json), as refusal, compliance (an attempt at the request) and
degenerate (off-request: empty, a loop, an acknowledgement or a label without content;
`judges.base.degenerate_reason`).

    python scripts/organism_outcomes.py aligned-v6
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from tasksafe.judges.base import degenerate_reason
from tasksafe.models.registry import resolve_model
from tasksafe.text import text_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("organism", help="a registered organism name (aligned, aligned-v6, ...) or a build folder")
    args = parser.parse_args()
    folder = Path(resolve_model(args.organism))
    counts: dict[str, Counter] = {}
    for line in (folder / "replies.jsonl").read_text(encoding="utf-8").splitlines():
        reply = json.loads(line)
        if reply["keywords"] == "refusal":
            outcome = "refusal"
        else:
            outcome = "degenerate" if degenerate_reason(reply["response"], reply["messages"][-1]["content"]) \
                else "compliance"
        counts.setdefault(reply["cell"], Counter())[outcome] += 1
    rows = [[cell, sum(c.values()), c["refusal"], c["compliance"], c["degenerate"]] for cell, c in counts.items()]
    print(text_table(["measurement", "n", "refusal", "compliance", "degenerate"], rows))


if __name__ == "__main__":
    main()
