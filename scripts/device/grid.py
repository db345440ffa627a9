"""Run the paper grid's cells on one machine with a GPU, several cells at a time.

A 135M model's cell keeps a GPU far from busy (small kernels, launch-bound decoding), so
WORKERS cells run at once, each as its own `tasksafe run ... --only <that cell>` process with
its own results store (no two writers on one SQLite file). After every cell the finished
cells of all stores are exported, together, to OUT/grid.jsonl (replaced atomically), and a
line goes to OUT/progress.log, so whatever finished before the machine is taken back is kept.
Merge the file with `tasksafe results merge OUT/grid.jsonl --into results/paper`.

    python scripts/device/grid.py --out $OUT --workers 12 --models /tmp/models
    python scripts/device/grid.py --list --done results/paper.jsonl   # the cells still to run, in order

Cells run in the order of the paper's parts (core SST-2, core AG News, defence, baselines,
seeds, efficiency, the `prefix` seeds); `--last` mitigations go after all others, `--skip` ones not at all (e.g.
`safelora`, which needs the unaligned base weights that may not be on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from tasksafe.experiments import expand, load_spec  # noqa: E402

PARTS = ["paper-core", "paper-defence", "paper-baselines", "paper-seeds", "paper-efficiency", "paper-seeds-prefix"]


def cells(specs: list[str], skip: set[str], last: set[str], only_task: str | None = None,
          done: set[str] = frozenset()) -> list[tuple[str, object]]:
    """(spec path, cell) in run order, each cell once (parts share identical cells), leaving out
    the cells whose ids are in `done`."""
    seen, first, later = set(done), [], []
    for name in specs:
        path = Path(name) if name.endswith(".yaml") else ROOT / "experiments" / f"{name}.yaml"
        spec = load_spec(path)
        ordered = sorted(expand(spec), key=lambda c: (c.task != "sst2", c.kind != "base"))
        for cell in ordered:
            if cell.id in seen or cell.mitigation in skip or (only_task and cell.task != only_task):
                continue
            seen.add(cell.id)
            (later if cell.mitigation in last else first).append((str(path), cell))
    return first + later


def only_filters(cell) -> list[str]:
    keys = ("kind", "task", "strategy", "mitigation", "budget", "seed")
    return [arg for key in keys for arg in ("--only", f"{key}={getattr(cell, key)}")]


class Driver:
    def __init__(self, out: Path, work: Path, models: Path, workers: int, started: float, deadline: float | None):
        self.out, self.work, self.models, self.workers = out, work, models, workers
        self.started, self.deadline = started, deadline
        self.lock = threading.Lock()
        self.queue: list[tuple[str, object]] = []

    def log(self, line: str) -> None:
        with self.lock, open(self.out / "progress.log", "a") as handle:
            handle.write(f"{time.time() - self.started:7.1f}s {line}\n")
        print(line, flush=True)

    def export(self) -> None:
        from tasksafe.experiments.transfer import export_results

        lines = []
        for store in sorted(self.work.glob("store-*")):
            if (store / "results.sqlite").exists():
                with tempfile.NamedTemporaryFile(suffix=".jsonl", delete=False) as tmp:
                    export_results(str(store), tmp.name)
                    lines += Path(tmp.name).read_text().splitlines()
                    os.unlink(tmp.name)
        target = self.out / "grid.jsonl"
        tmp = target.with_suffix(".part")
        tmp.write_text("".join(line + "\n" for line in sorted(lines)))
        tmp.replace(target)

    def worker(self, index: int) -> None:
        store, cache = self.work / f"store-{index:02d}", self.work / f"cache-{index:02d}"
        cache.mkdir(parents=True, exist_ok=True)
        if not (cache / "models").exists():
            (cache / "models").symlink_to(self.models)
        env = {**os.environ, "TASKSAFE_CACHE": str(cache), "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        while True:
            with self.lock:
                if not self.queue:
                    return
                spec, cell = self.queue.pop(0)
            if self.deadline and time.time() > self.deadline:
                return
            name = f"{cell.id} {cell.kind} {cell.task} {cell.strategy} {cell.mitigation} {cell.budget} seed {cell.seed}"
            self.log(f"start w{index:02d} {name}")
            begin = time.time()
            logfile = self.work / "logs" / f"{cell.id}.log"
            with open(logfile, "w") as handle:
                rc = subprocess.call([sys.executable, "-m", "tasksafe.cli.main", "run", spec, "--results", str(store),
                                      *only_filters(cell)], env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
            tail = "" if rc == 0 else "\n    " + "\n    ".join(logfile.read_text().splitlines()[-25:])
            self.log(f"end   w{index:02d} {name} rc {rc} {time.time() - begin:.0f}s{tail}")
            with self.lock:
                self.export()

    def run(self, todo: list[tuple[str, object]]) -> None:
        (self.work / "logs").mkdir(parents=True, exist_ok=True)
        self.queue = list(todo)
        self.log(f"{len(todo)} cells, {self.workers} workers")
        threads = [threading.Thread(target=self.worker, args=(i,)) for i in range(self.workers)]
        for thread in threads:
            thread.start()
            time.sleep(2)  # stagger the imports and model loads
        for thread in threads:
            thread.join()
        self.log("done")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("grid-out"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/grid"))
    parser.add_argument("--models", type=Path, help="a models folder (aligned.json and the organism's folder)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--specs", nargs="*", default=PARTS)
    parser.add_argument("--skip", nargs="*", default=["safelora"])
    parser.add_argument("--last", nargs="*", default=[], help="mitigations whose cells run after all others")
    parser.add_argument("--task", default=None, help="only this task's cells")
    parser.add_argument("--limit", type=int, default=None, help="at most this many cells")
    parser.add_argument("--seconds", type=float, default=None, help="start no cell after this many seconds")
    parser.add_argument("--done", type=Path, default=None,
                        help="a results file (tasksafe results export): its finished cells are not run again")
    parser.add_argument("--list", action="store_true")
    args = parser.parse_args()
    done = {json.loads(line)["id"] for line in args.done.read_text().splitlines() if line.strip()} if args.done else set()
    todo = cells(args.specs, set(args.skip), set(args.last), args.task, done)[:args.limit]
    if args.list:
        for spec, cell in todo:
            print(Path(spec).stem, cell.id, cell.kind, cell.task, cell.strategy, cell.mitigation, cell.budget, cell.seed)
        return
    if args.models is None:
        parser.error("--models is needed to run cells (a folder with aligned.json and the organism's folder)")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    Driver(args.out, args.work, args.models, args.workers, started,
           started + args.seconds if args.seconds else None).run(todo)


if __name__ == "__main__":
    main()
