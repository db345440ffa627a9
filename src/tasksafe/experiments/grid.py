"""Run an experiment grid cell by cell: build -> protect -> finetune -> evaluate, reusing
what an earlier cell or run already produced (the built dataset, the protected dataset, the
aligned model, cached generations), and record each cell only when it has finished."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from tasksafe.errors import UserError
from tasksafe.experiments.spec import CellConfig, Spec, cell_id, expand, selected
from tasksafe.experiments.store import ResultsStore, store_path
from tasksafe.results import CellResult

CELL_COSTS = {
    # seconds per unit of work on the project's 2-core CPU, from `benchmarks/cell.py` on the
    # grid's `aoa` SST-2 cell at paper-core's sizes, 2026-12-04 (docs/benchmarks.md, "A grid
    # cell": fp32 446 s train / 323 s generate / 81 s score, bf16 283 / 209 / 49): a training
    # example-epoch (about 157 tokens), a prompt as `estimate_seconds` counts them (1,700 for
    # that cell), a scored task item; estimate_seconds gives that cell's measured time back
    "fp32": {"example_epoch": 446 / 600, "prompt": 323 / 1700, "task_item": 81 / 100},
    "bf16": {"example_epoch": 283 / 600, "prompt": 209 / 1700, "task_item": 49 / 100},
}
LONG_FORM_FACTOR = 2.0  # autoif answers: about twice the tokens of an aoa example


def estimate_seconds(cell: CellConfig) -> float:
    """The cell's CPU time from the measured per-unit costs of its precisions (the dry run)."""
    from tasksafe.evaluate.phrasings import FAMILIES, split_of
    from tasksafe.mitigations import Budget
    from tasksafe.models.precision import resolve

    ev = cell.eval
    evaluating = CELL_COSTS[resolve(ev.precision)] if ev.backend == "hf" else CELL_COSTS["fp32"]
    phrasings = sum(map(len, FAMILIES.values())) if ev.sealed else sum(split_of(n) == "dev" for f in FAMILIES.values() for n in f)
    harmful = (ev.n or 500) * len(ev.harmful) * 2 + phrasings * min(ev.heldout_n or 0, ev.n or 500)
    prompts = harmful * ev.harmful_max_new_tokens / 64 + (ev.overrefusal_n or 250) + ev.task_n
    seconds = prompts * evaluating["prompt"] + ev.task_n * evaluating["task_item"] * ev.loglik
    if cell.kind == "finetune":
        training = CELL_COSTS[resolve(cell.train.precision) if cell.train.method == "lora" else "fp32"]
        examples = cell.train_examples + Budget.of(cell.budget).resolve(cell.train_examples)
        long_form = LONG_FORM_FACTOR if cell.strategy.startswith("autoif") else 1.0
        seconds += examples * cell.train.epochs * long_form * training["example_epoch"]
    return seconds


@contextmanager
def _timed(timings: dict[str, float], stage: str):
    start = time.time()
    yield
    timings[stage] = time.time() - start


def _protected_dataset(cell: CellConfig, artifacts: Path) -> tuple[Path, dict]:
    """The cell's user dataset, built once per task/strategy/size/seed, protected once per
    mitigation/budget/options; returns its path and its sidecar."""
    from tasksafe.data.chat import write_chat_jsonl
    from tasksafe.mitigations import Budget
    from tasksafe.mitigations.protect import protect_file, read_protection
    from tasksafe.strategies import build_dataset

    data_dir = artifacts / "data"
    stem = f"{cell.task}-{cell.strategy}-{cell.train_examples}-s{cell.seed}"
    user_data = data_dir / f"{stem}.jsonl"
    if not user_data.is_file():
        write_chat_jsonl(user_data, build_dataset(cell.task, cell.strategy, "train", cell.train_examples, cell.seed))
    variant = f"-{cell_id(cell.options)[:8]}" if cell.options else ""
    protected = data_dir / f"{stem}-{cell.mitigation}-{cell.budget:g}{variant}.jsonl"
    meta = read_protection(protected)
    if meta is None:
        meta = protect_file(user_data, protected, cell.mitigation, Budget.of(cell.budget), cell.seed,
                            options=cell.options)
    return protected, meta


def run_cell(cell: CellConfig, artifacts: Path) -> CellResult:
    """Run one cell with its artifacts (datasets, runs, generations) under `artifacts`; returns
    what the evaluation measured and the seconds per stage. Workers run this; it writes no
    store."""
    from tasksafe.evaluate import EvalConfig, evaluate
    from tasksafe.executors import release_memory
    from tasksafe.train import FinetuneConfig, finetune

    timings: dict[str, float] = {}
    config = EvalConfig(target=cell.model, task=cell.task, seed=cell.seed, **cell.eval.model_dump())
    eval_dir = artifacts / "evals" / cell.id
    if cell.kind == "base":
        with _timed(timings, "evaluate"):
            result = evaluate(config.model_copy(update={"strategy": cell.strategy}), eval_dir, progress=False)
        return CellResult(cell_id=cell.id, metrics=result, timings=timings)
    with _timed(timings, "protect"):
        protected, meta = _protected_dataset(cell, artifacts)
    run_dir = artifacts / "runs" / cell.id
    with _timed(timings, "finetune"):  # applies the mitigation's post-training step too (Safe LoRA)
        if not (run_dir / "adapter").is_dir() and not (run_dir / "model").is_dir():
            finetune(FinetuneConfig(model=cell.model, data=str(protected), output_dir=str(run_dir), seed=cell.seed,
                                    **cell.train.model_dump()), progress=False)
    release_memory()  # the tune's model and optimiser, before the evaluation loads the tuned model
    with _timed(timings, "evaluate"):
        result = evaluate(config.model_copy(update={"target": str(run_dir)}), eval_dir, progress=False)
    release_memory()
    result = result.model_copy(update={"safety_examples": meta.safety_examples,
                                       "user_examples": meta.user_examples})
    return CellResult(cell_id=cell.id, metrics=result, timings=timings)


def ensure_models(spec: Spec, echo: Callable[[str], None]) -> None:
    """Build each aligned organism the spec uses (a registry entry with a `recipe`) first, in
    the open, when it is missing."""
    from tasksafe.models.registry import MODELS

    for name in spec.models:
        recipe = MODELS.info(name).get("recipe") if name in MODELS else None
        if recipe is None:
            continue
        try:
            MODELS.get(name)()
        except UserError:
            from tasksafe.organism import AlignConfig, build_aligned

            echo(f"building the model organism {name} first (tasksafe align --recipe {recipe}; tens of minutes on "
                 "2 CPU cores)")
            build_aligned(AlignConfig.for_recipe(recipe))


def list_cells(cells: list[CellConfig], results_dir: str | Path, echo: Callable[[str], None]) -> None:
    """List the cells with estimates; reads the store if there is one and writes nothing."""
    done: set[str] = set()
    if store_path(results_dir).is_file():
        reader = ResultsStore(results_dir, read_only=True)
        done = reader.finished()
        reader.close()
    total = 0.0
    for cell in cells:
        seconds = estimate_seconds(cell)
        total += 0 if cell.id in done else seconds
        state = "done" if cell.id in done else f"~{seconds / 60:.0f} min"
        echo(f"{cell.id}  {cell.kind:<8} {cell.model:<12} {cell.task:<7} {cell.strategy:<10} "
             f"{cell.mitigation:<10} budget {cell.budget:<6g} seed {cell.seed}  {state}")
    finished = sum(cell.id in done for cell in cells)
    echo(f"{len(cells)} cells, {finished} finished; about {total / 60:.0f} min of CPU time left (per-cell costs "
         "measured by benchmarks/cell.py on a 2-core CPU: docs/benchmarks.md)")


def run_spec(spec: Spec, results_dir: str | Path, dry_run: bool = False, echo: Callable[[str], None] = print,
             only: dict[str, set[str]] | None = None, executor: str = "local",
             address: str | None = None) -> list[CellConfig]:
    """Run every unfinished cell of `spec` on `executor` (`local` or `ray`, see
    tasksafe.executors), or with `dry_run` list them with estimates; `only` (see `parse_only`)
    restricts the grid to a part of it. Only this process writes the store: each finished cell
    in one transaction, each failed one (an error, or a worker that died past `spec.retries`)
    as a failure the report shows and the next run retries. Raises `GridFailed` when any
    cell failed."""
    cells = [c for c in expand(spec) if selected(c, only or {})]
    if not cells:
        raise UserError("no cell of the grid matches the --only filters")
    if dry_run:
        list_cells(cells, results_dir, echo)
        return cells
    from tasksafe.executors import make_executor

    runner = make_executor(executor, address=address, retries=spec.retries)  # before the organism: fail fast
    ensure_models(spec, echo)
    from tasksafe.models.registry import model_version

    builds = {f"model:{m}": v for m in spec.models if (v := model_version(m))}
    store = ResultsStore(results_dir)
    done = store.finished()
    todo = [c for c in cells if c.id not in done]
    try:
        failed = _run_cells(spec, todo, store, runner, builds, cell_artifacts(spec, results_dir))
    finally:
        store.close()
        runner.close()
    echo(f"{len(cells)} cells: {len(done)} were finished before, {len(todo) - len(failed)} ran now"
         f"{f', {len(failed)} failed' if failed else ''}; results in {results_dir}")
    if failed:
        raise GridFailed(f"{len(failed)} of {len(todo)} cells failed (rerun to retry them):\n" + "\n".join(failed))
    return cells


def _run_cells(spec: Spec, todo: list[CellConfig], store: ResultsStore, runner, builds: dict[str, str],
               artifacts: Path) -> list[str]:
    """Hand the cells to the executor and store each outcome as it comes; returns a line per
    failed cell."""
    from tqdm.auto import tqdm

    from tasksafe.executors import Unit

    by_id = {cell.id: cell for cell in todo}
    units = [Unit(cell.id, run_cell, (cell, artifacts), spec.resources_for(cell.kind), cell_log(artifacts, cell.id))
             for cell in todo]
    bar = tqdm(total=len(todo), desc=f"{spec.name}: cells", unit="cell", disable=not todo)
    failed: list[str] = []

    def show(running: int, waiting: int) -> None:
        bar.set_postfix_str(f"{running} running, {waiting} waiting, {len(failed)} failed")

    for outcome in runner.run_all(units, on_change=show):
        cell, log = by_id[outcome.key], str(cell_log(artifacts, outcome.key))
        if outcome.error is None:
            store.record(spec.name, cell, outcome.value.metrics, outcome.value.timings, builds)
        else:
            store.record_failure(spec.name, cell, outcome.error, outcome.attempts, log)
            failed.append(f"  {cell.id} ({cell.kind} {cell.task} {cell.strategy} {cell.mitigation_label()}): "
                          f"{outcome.error}; log: {log}")
        bar.update()
    bar.close()
    return failed


class GridFailed(UserError):
    """Some cells of a grid failed; the others are stored."""


def cell_artifacts(spec: Spec, results_dir: str | Path) -> Path:
    """Where the cells' datasets, runs, generations and logs go: the spec's `artifacts_dir`
    (a path every worker reaches) or the store's own artifacts folder."""
    return Path(spec.artifacts_dir).absolute() if spec.artifacts_dir else Path(results_dir).absolute() / "artifacts"


def cell_log(artifacts: Path, cell_id: str) -> Path:
    return artifacts / "logs" / f"{cell_id}.log"
