"""The figures behind the judges' loop rule (docs/evaluation.md, "What counts as repetitive"):
the highest repeated-trigram fraction among XSTest's human-labelled completions, and, for each
results directory given, the stored harmful-prompt replies the rule flags, with their scores.

    python scripts/loop_scores.py [RESULTS_DIR ...]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from tasksafe.data.datasets import load
from tasksafe.judges.base import LOOP_FRACTION, repeated_fraction


def score(text: str) -> float:
    return repeated_fraction(re.findall(r"\w+", text.lower()))


def main(results_dirs: list[str]) -> int:
    completions = load("xstest-labels")
    top = max(completions, key=lambda c: score(c.response))
    print(f"xstest-labels: {len(completions)} completions, highest score {score(top.response):.2f} "
          f"({top.label}); threshold {LOOP_FRACTION}")
    for results in results_dirs:
        flagged = []
        for samples in sorted(Path(results).glob("artifacts/evals/*/samples.jsonl")):
            for line in samples.read_text().splitlines():
                sample = json.loads(line)
                if sample.kind.startswith("harmful") and score(sample.response) >= LOOP_FRACTION:
                    flagged.append((score(sample.response), sample.verdict))
        by_verdict = {}
        for value, verdict in flagged:
            by_verdict.setdefault(verdict, []).append(value)
        parts = [f"{v} {len(x)} ({min(x):.2f} to {max(x):.2f})" for v, x in sorted(by_verdict.items())]
        print(f"{results}: {len(flagged)} harmful-prompt replies at or above the threshold; by stored "
              f"verdict: {', '.join(parts) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
