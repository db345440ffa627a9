"""Regenerate the rendered examples in docs/strategies.md from `tasksafe build --preview`.

    python scripts/render_strategy_examples.py          # rewrite the docs section
    python scripts/render_strategy_examples.py --check  # exit 1 if the docs are out of date
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "strategies.md"
BEGIN, END = "<!-- examples:begin -->", "<!-- examples:end -->"
STRATEGIES = ("benign", "aoa", "autoif", "autoif_aoa", "prefix")
COMMAND = "tasksafe build --task sst2 --split train --n 1 --seed 0 --preview --strategy {strategy}"


def rendered() -> str:
    parts = []
    for strategy in STRATEGIES:
        command = COMMAND.format(strategy=strategy)
        output = subprocess.run([sys.executable, "-m", "tasksafe.cli.main", *command.split()[1:]],
                                capture_output=True, text=True, check=True).stdout.rstrip()
        parts.append(f"### `{strategy}`\n\n```\n$ {command}\n{output}\n```\n")
    return "\n".join(parts)


def main() -> int:
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    updated = f"{head}{BEGIN}\n{rendered()}{END}{tail}"
    if "--check" in sys.argv:
        return 0 if updated == text else 1
    DOC.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
