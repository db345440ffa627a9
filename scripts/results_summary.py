"""The README's and docs/results.md's summary table of a results store or committed results
file: one row per fine-tuned cell, the rates a reader needs first (non-refusal and harmful
compliance plain, in the renderer's frame and in the held-out phrasings (dev and sealed apart),
the worst phrasing named with every tie, task accuracy, over-refusal). `tasksafe report` has every column.

    python scripts/results_summary.py results/strategies.jsonl
"""

from __future__ import annotations

import sys

from tasksafe.experiments.transfer import read_rows
from tasksafe.report.tables import finetuned_in_order, markdown_table, mode_rate, percent

HEADERS = ["strategy", "mitigation", "safety examples", "non-refusal plain %", "harmful plain %",
           "non-refusal in-format (renderer's) %", "non-refusal held-out dev %", "non-refusal held-out sealed %",
           "harmful held-out %", "worst held-out phrasing (chosen on half the prompts, measured on the rest) %",
           "task accuracy %", "over-refusal %"]


def summary(source: str) -> str:
    body = []
    for row in finetuned_in_order(read_rows(source)):
        c, m = row.config, row.metrics
        entry = m.first_harmful()[1]
        names, worst = entry.bounded_worst() if entry.verdicts else entry.worst()
        in_format = "= plain" if entry.in_format_is_plain else percent(mode_rate(row, "in_format", "non_refusal"))
        body.append([f"`{c.strategy}`", c.mitigation_label(), str(m.safety_examples),
                     *[percent(mode_rate(row, mode, key)) for mode, key in (("plain", "non_refusal"), ("plain", "asr"))],
                     in_format,
                     *[percent(mode_rate(row, mode, key)) for mode, key in
                       (("held_out_dev", "non_refusal"), ("sealed", "non_refusal"), ("held_out", "asr"))],
                     f"{percent(worst.non_refusal)} ({', '.join(names)})" if worst else "-",
                     percent(m.task.generation_accuracy if m.task else None), percent(m.overrefusal.xstest_safe)])
    return markdown_table(HEADERS, body)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(summary(sys.argv[1]))
