"""The README's and docs/results.md's summary table of a results store or committed results
file: one row per fine-tuned cell (named by task, strategy, mitigation, budget and seed), the
rates a reader needs first (non-refusal and harmful compliance plain, in the renderer's frame
and in the held-out phrasings (dev and sealed apart), the worst phrasing named with every tie,
task accuracy, over-refusal). `tasksafe report` has every column.

    python scripts/results_summary.py results/strategies.jsonl
"""

from __future__ import annotations

import argparse

from tasksafe.experiments.transfer import read_rows
from tasksafe.report.tables import finetuned_in_order, markdown_table, mode_rate, percent
from tasksafe.results import MEASURES, MODES

SHOWN = [mode for mode in MODES if mode.in_tables]  # tasksafe.results.MODES, in their order
HEADERS = ["task", "strategy", "mitigation", "safety examples", "seed", "harmful plain %",
           *[f"non-refusal {mode.label} %" for mode in SHOWN], "worst held-out phrasing(s)",
           *[f"{measure.label} %" for measure in MEASURES]]


def summary(source: str) -> str:
    body = []
    for row in finetuned_in_order(read_rows(source)):
        c, m = row.config, row.metrics
        entry = m.first_harmful()[1]
        names, _ = entry.bounded_worst() if entry.verdicts else entry.worst()
        cells = ["= plain" if mode.key == "in_format" and entry.in_format_is_plain
                 else percent(mode_rate(row, mode.key, "non_refusal")) for mode in SHOWN]
        body.append([c.task, f"`{c.strategy}`", c.mitigation_label(), str(m.safety_examples), str(c.seed),
                     percent(mode_rate(row, "plain", "asr")), *cells, ", ".join(names) or "-",
                     *[percent(measure.read(m)) for measure in MEASURES]])
    return markdown_table(HEADERS, body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="a results store folder (results/NAME) or a committed results file (.jsonl)")
    print(summary(parser.parse_args().source))
