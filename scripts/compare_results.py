"""Compare the cells two results files share (same cell id): did they measure the same thing?

For each shared cell: per harmful set, the non-refusal counts of every rate mode in both files;
the per-prompt verdict letters (refusal / compliance / degenerate) compared letter by letter,
as a three-way agreement and as refusal-vs-not; task accuracy and over-refusal counts. Made
for cells run on two kinds of device (a CPU and a GPU, both fp32) to decide whether one grid
may hold cells from both; any two exports of the same grid work.

    python scripts/compare_results.py results/paper.jsonl results/checks/device-check.jsonl
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from tasksafe.experiments.store import CellRecord  # noqa: E402
from tasksafe.experiments.transfer import read_rows  # noqa: E402
from tasksafe.report.tables import markdown_table  # noqa: E402
from tasksafe.results import EvalResult  # noqa: E402


def read(path: str) -> dict[str, CellRecord]:
    return {row.id: row for row in read_rows(path)}


def device(row: CellRecord) -> str:
    return row.versions.get("device", "cpu (not recorded)")


def letters(result: EvalResult) -> dict[tuple[str, str], str]:
    return {(name, mode): verdicts for name, entry in result.harmful.items() for mode, verdicts in entry.verdicts.items()}


def compare(first: CellRecord, second: CellRecord) -> tuple[list, int, int, int, int]:
    """One table row per rate, and the verdict letters compared (same, total, same refusal-vs-not)."""
    a, b = first.metrics, second.metrics
    rows = []
    for name in a.harmful:
        for mode in ("plain", "in_format", "held_out", "sealed"):
            ra, rb = a.harmful[name].mode(mode), b.harmful[name].mode(mode)
            if ra is not None and rb is not None:
                rows.append([f"{name} {mode}", f"{ra.non_refusal.k}/{ra.non_refusal.n}",
                             f"{rb.non_refusal.k}/{rb.non_refusal.n}"])
    if a.task and b.task:
        rows.append(["task (generation)", f"{a.task.generation_accuracy.k}/{a.task.generation_accuracy.n}",
                     f"{b.task.generation_accuracy.k}/{b.task.generation_accuracy.n}"])
    rows.append(["over-refusal (XSTest)", f"{a.overrefusal.xstest_safe.k}/{a.overrefusal.xstest_safe.n}",
                 f"{b.overrefusal.xstest_safe.k}/{b.overrefusal.xstest_safe.n}"])
    la, lb = letters(a), letters(b)
    same = total = same_refusal = 0
    for key in la.keys() & lb.keys():
        for x, y in zip(la[key], lb[key]):
            total += 1
            same += x == y
            same_refusal += (x == "r") == (y == "r")
    differing = sum(row[1] != row[2] for row in rows)
    return rows, same, total, same_refusal, differing


def main(first_path: str, second_path: str) -> None:
    first, second = read(first_path), read(second_path)
    shared = sorted(first.keys() & second.keys())
    if not shared:
        raise SystemExit(f"{first_path} and {second_path} share no cell")
    totals = [0, 0, 0, 0, 0]
    for cell_id in shared:
        c = first[cell_id].config
        rows, same, total, same_refusal, differing = compare(first[cell_id], second[cell_id])
        print(f"\n{cell_id}  {c.kind} {c.task} {c.strategy} {c.mitigation} {c.budget:g} seed {c.seed}")
        print(markdown_table(["rate (non-refusal / accuracy / refusal)", device(first[cell_id]),
                              device(second[cell_id])], rows))
        print(f"verdict letters: {same}/{total} the same (three-way), {same_refusal}/{total} the same refusal-vs-not; "
              f"{differing} of {len(rows)} counts differ")
        for i, value in enumerate((same, total, same_refusal, differing, len(rows))):
            totals[i] += value
    same, total, same_refusal, differing, counts = totals
    print(f"\n{len(shared)} shared cells: verdict letters {same}/{total} the same three-way "
          f"({same / max(total, 1):.2%}), {same_refusal}/{total} refusal-vs-not; {differing} of {counts} counts differ")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(sys.argv[1], sys.argv[2])
