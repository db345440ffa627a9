"""The gateway's knee, old code against new, side by side in one run: `gateway_curve.curve` for
each, alternating which goes first, `--rounds` times, with two load generators: the `openai`
package in one process (the curve's first figures) and raw `http.client` readers spread over
four processes (a generator that leaves the CPU to the server). Prints each curve's knee (the
first offered load whose list/retrieve p99 crosses 100 ms or of which under 90% is served:
`gateway_curve.knee_at`), the median knee per code and
generator, and the ratio new / old; target: at least 2, with no errors and no lost jobs.

    TASKSAFE_DATA_DIR=../shared/data python benchmarks/gateway_knee.py [--old-rev REV | --old SRC] [--rounds 2]

The old code is the commit before the gateway's load work (`OLD_REV`), checked out into a
temporary git worktree, or another checkout's src folder (`--old`).

A curve whose knee is not reached counts at its highest offered load (a lower bound). Ends with
one line of JSON holding the figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

from gateway_curve import curve

OLD_REV = "55db9b0"
"""The last commit before the gateway's load work (the plain ASGI middleware, writes off the event loop)."""
GENERATORS = {"openai, 1 process": {"raw": False, "processes": 1, "loads": (40, 80, 120, 160, 240, 320)},
              "raw, 4 processes": {"raw": True, "processes": 4, "loads": (160, 320, 640, 960, 1280, 1600)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", help="the old checkout's src folder (default: OLD_REV in a temporary worktree)")
    parser.add_argument("--old-rev", default=OLD_REV, help="the old commit, when --old is not given")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=12.0, help="seconds per load step")
    args = parser.parse_args()
    if args.old:
        return measure(args, args.old)
    repo = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", tmp + "/old", args.old_rev], check=True,
                       capture_output=True)
        try:
            measure(args, tmp + "/old/src")
        finally:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", tmp + "/old"], capture_output=True)


def measure(args, old: str) -> None:
    runs = []
    for round_ in range(args.rounds):
        for generator, setting in GENERATORS.items():
            order = (("old", old), ("new", None)) if round_ % 2 == 0 else (("new", None), ("old", old))
            for code, src in order:
                print(f"-- round {round_ + 1}, {generator}, {code} code", flush=True)
                figures = curve(list(setting["loads"]), 40, args.seconds, src, processes=setting["processes"],
                                raw=setting["raw"], chat=False, log=lambda line: print("   " + line, flush=True))
                knee = figures["knee_rps"] or max(setting["loads"])
                runs.append({"round": round_ + 1, "generator": generator, "code": code, "knee_rps": knee,
                             "knee_reached": figures["knee_rps"] is not None, "errors": figures["errors"],
                             "lost_jobs": figures["lost_jobs"], "highest_rps": figures["highest_rps"],
                             "read_p99_ms": [s["read_p99_ms"] for s in figures["steps"]]})
    summary = {}
    print(f"\n{'generator':<20}{'old knee':>10}{'new knee':>10}{'new / old':>11}")
    for generator in GENERATORS:
        knees = {code: statistics.median(r["knee_rps"] for r in runs if r["generator"] == generator and r["code"] == code)
                 for code in ("old", "new")}
        ratio = knees["new"] / knees["old"]
        summary[generator] = {**knees, "ratio": round(ratio, 2)}
        print(f"{generator:<20}{knees['old']:>10g}{knees['new']:>10g}{ratio:>11.2f}")
    clean = not any(r["errors"] or r["lost_jobs"] for r in runs)
    print(f"errors {sum(r['errors'] for r in runs)}, jobs lost {sum(r['lost_jobs'] for r in runs)}")
    print(json.dumps({"benchmark": "gateway_knee", "runs": runs, "summary": summary, "target_ratio": 2.0,
                      "target": ">=", "ratio": min(s["ratio"] for s in summary.values()),
                      "pass": clean and all(s["ratio"] >= 2 for s in summary.values())}))


if __name__ == "__main__":
    main()
