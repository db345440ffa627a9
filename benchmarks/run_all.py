"""`make bench`: run every script in benchmarks/ and print one summary table from the JSON
line each one ends with."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    rows = []
    for script in sorted(HERE.glob("*.py")):
        if script.name == "run_all.py":
            continue
        print(f"== {script.name}", flush=True)
        result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        print(result.stdout, end="")
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        figures = json.loads(lines[-1]) if result.returncode == 0 and lines else {"pass": False, "error": result.stderr[-300:]}
        rows.append((script.name, figures))
    print("\n== summary")
    print(f"{'benchmark':<24}{'ratio':>8}{'target':>10}  pass")
    for name, figures in rows:
        ratio = figures.get("ratio")
        target = figures.get("target_ratio")
        target = f"{figures.get('target', '')} {target}".strip() if target is not None else "-"
        print(f"{name:<24}{ratio if ratio is not None else '-':>8}{target:>10}  "
              f"{'yes' if figures.get('pass') else 'NO'}")
    return 0 if all(f.get("pass") for _, f in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
