"""Regenerate the rendered examples in the docs from the CLI, so they cannot drift.

    python scripts/render_docs.py          # rewrite the generated sections
    python scripts/render_docs.py --check  # exit 1 if any section is out of date

A generated section sits between `<!-- examples:begin -->` and `<!-- examples:end -->`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
BEGIN, END = "<!-- examples:begin -->", "<!-- examples:end -->"


def tasksafe(command: str) -> str:
    """Run `tasksafe ...` (given as one string) and return its standard output."""
    return subprocess.run([sys.executable, "-m", "tasksafe.cli.main", *command.split()[1:]],
                          capture_output=True, text=True, check=True).stdout.rstrip()


def strategy_examples() -> str:
    parts = []
    for strategy in ("benign", "aoa", "autoif", "autoif_aoa", "prefix"):
        command = f"tasksafe build --task sst2 --split train --n 1 --seed 0 --preview --strategy {strategy}"
        parts.append(f"### `{strategy}`\n\n```\n$ {command}\n{tasksafe(command)}\n```\n")
    return "\n".join(parts)


def _turns(example: dict) -> str:
    return "\n".join(f"[{m['role']}]\n{m['content']}\n" for m in example["messages"]).rstrip()


def mitigation_examples() -> str:
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        user = f"{tmp}/user.jsonl"
        build = f"tasksafe build --task sst2 --strategy aoa --n 20 --seed 0 -o {user}"
        tasksafe(build)
        parts.append(f"The user dataset: `{build.replace(tmp + '/', '')}`.\n")
        for mitigation, extra in (("mix", "--k 2"), ("bea", "--k 2"), ("ptst", ""), ("paraphrase", "--k 2"),
                                  ("paraphrase", "--k 2 -O keep_affixes=false")):
            out = f"{tmp}/{mitigation}.jsonl"
            command = f"tasksafe protect {user} --mitigation {mitigation} {extra} --seed 0 -o {out}".replace("  ", " ")
            tasksafe(command)
            examples = [json.loads(line) for line in Path(out).read_text().splitlines()]
            meta = json.loads(Path(out.removesuffix(".jsonl") + ".meta.json").read_text())
            added = [ex for ex in examples if ex.get("metadata", {}).get("mitigation")]
            shown = command.replace(tmp + "/", "")
            if mitigation == "paraphrase":  # one request where the instruction goes, one in the slot
                note = "# the added safety examples"
                body = "\n\n".join(f"({ex['metadata']['placement']} placement)\n{_turns(ex)}" for ex in added)
            else:
                note = "# first added safety example"
                body = _turns(added[0]) if added else "(no training change)"
            hook = meta["inference_hook"]
            hook_line = f"\ninference hook: system prompt {hook['system_prompt']!r}" if hook else ""
            title = f"`{mitigation}` {extra.replace('--k 2', '').strip()}".strip()
            parts.append(f"### {title}\n\n```\n$ {shown}\n"
                         f"{note}\n{body}{hook_line}\n```\n")
    return "\n".join(parts)


SECTIONS = {"strategies.md": strategy_examples, "method.md": mitigation_examples}


def main() -> int:
    stale = []
    for name, render in SECTIONS.items():
        doc = DOCS / name
        text = doc.read_text()
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        updated = f"{head}{BEGIN}\n{render()}{END}{tail}"
        if updated != text:
            stale.append(name)
            if "--check" not in sys.argv:
                doc.write_text(updated)
    if "--check" in sys.argv and stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/render_docs.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
