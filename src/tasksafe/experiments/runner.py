"""Run an experiment grid cell by cell: build -> protect -> finetune -> evaluate, reusing
what an earlier cell or run already produced (the built dataset, the protected dataset, the
aligned model, cached generations), and record each cell only when it has finished."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tasksafe.errors import UserError
from tasksafe.experiments.spec import Spec, cell_id, expand, selected
from tasksafe.experiments.store import ResultsStore, store_path

UNALIGNED = {"aligned": "smollm2-135m"}  # what Safe LoRA subtracts, per aligned model
GENERATION_TOKENS_PER_S = 190.0  # measured on the 2-core CPU (docs/benchmarks.md)
TRAIN_TOKENS_PER_S = 240.0


def estimate_seconds(cell: dict) -> float:
    """A rough CPU estimate for the dry run."""
    ev = cell["eval"]
    harmful = (ev["n"] or 500) * len(ev["harmful"]) * 2
    generations = harmful + (ev["overrefusal_n"] or 250) + ev["task_n"]
    seconds = harmful * ev["harmful_max_new_tokens"] / GENERATION_TOKENS_PER_S
    seconds += (generations - harmful) * 64 / GENERATION_TOKENS_PER_S
    if cell["kind"] == "finetune":
        long_form = cell["strategy"].startswith("autoif")
        seconds += cell["train_examples"] * (220 if long_form else 110) * cell["train"]["epochs"] / TRAIN_TOKENS_PER_S
    return seconds


def _budget(value: float):
    """A spec budget: a count (>= 1), a fraction (< 1), or 0 for mitigations that add nothing."""
    from tasksafe.mitigations import Budget

    return Budget(k=int(value)) if value >= 1 or value == 0 else Budget(fraction=value)


def run_cell(cell: dict, store: ResultsStore) -> tuple[dict, dict]:
    """Run one cell; returns (metrics, timings)."""
    from tasksafe.data.chat import write_chat_jsonl
    from tasksafe.evaluate import EvalConfig, evaluate
    from tasksafe.mitigations.protect import protect_file, read_sidecar, sidecar_path
    from tasksafe.strategies import build_dataset
    from tasksafe.train import FinetuneConfig, finetune

    timings: dict[str, float] = {}
    ev = cell["eval"]
    eval_dir = store.artifacts / "evals" / cell["id"]
    config = EvalConfig(target="", task=cell["task"], harmful=ev["harmful"], n=ev["n"], task_n=ev["task_n"],
                        overrefusal_n=ev["overrefusal_n"], judge=ev["judge"], backend=ev["backend"], seed=cell["seed"],
                        harmful_max_new_tokens=ev["harmful_max_new_tokens"])
    if cell["kind"] == "base":
        config.target, config.strategy = cell["model"], cell["strategy"]
        start = time.time()
        metrics = evaluate(config, eval_dir)
        timings["evaluate"] = time.time() - start
        return metrics, timings

    data_dir = store.artifacts / "data"
    stem = f"{cell['task']}-{cell['strategy']}-{cell['train_examples']}-s{cell['seed']}"
    user_data = data_dir / f"{stem}.jsonl"
    start = time.time()
    if not user_data.is_file():
        write_chat_jsonl(user_data, build_dataset(cell["task"], cell["strategy"], "train", cell["train_examples"],
                                                  cell["seed"]))
    timings["build"] = time.time() - start

    start = time.time()
    options = cell.get("options", {})
    variant = f"-{cell_id(options)[:8]}" if options else ""
    protected = data_dir / f"{stem}-{cell['mitigation']}-{cell['budget']:g}{variant}.jsonl"
    if not sidecar_path(protected).is_file():
        protect_file(user_data, protected, cell["mitigation"], _budget(cell["budget"]), cell["seed"], **options)
    meta = read_sidecar(protected)
    timings["protect"] = time.time() - start

    start = time.time()
    run_dir = store.artifacts / "runs" / cell["id"]
    train = cell["train"]
    if not (run_dir / "adapter").is_dir() and not (run_dir / "model").is_dir():
        finetune(FinetuneConfig(model=cell["model"], data=str(protected), output_dir=str(run_dir),
                                method=train["method"], epochs=train["epochs"], lr=train["lr"],
                                batch_size=train["batch_size"], max_length=train["max_length"],
                                lora_r=train["lora_r"], lora_alpha=2 * train["lora_r"], seed=cell["seed"]),
                 progress=False)
    timings["finetune"] = time.time() - start

    if cell["mitigation"] == "safelora":
        from tasksafe.train.safelora import apply_safelora

        start = time.time()
        if cell["model"] not in UNALIGNED:
            raise UserError(f"safelora needs the unaligned weights of {cell['model']!r}; known for: {', '.join(UNALIGNED)}")
        projected = store.artifacts / "runs" / f"{cell['id']}-safelora"
        if not (projected / "safelora.json").is_file():
            apply_safelora(run_dir, cell["model"], UNALIGNED[cell["model"]], projected,
                           threshold=(meta.get("post_training") or {}).get("safelora", {}).get("threshold", 0.5))
        run_dir = projected
        timings["safelora"] = time.time() - start

    start = time.time()
    config.target = str(run_dir)
    metrics = evaluate(config, eval_dir)
    metrics["safety_examples"] = meta["safety_examples"]
    metrics["user_examples"] = meta["user_examples"]
    timings["evaluate"] = time.time() - start
    return metrics, timings


def run_spec(spec: Spec, results_dir: str | Path, dry_run: bool = False,
             echo: Callable[[str], None] = print, only: dict[str, set[str]] | None = None) -> list[dict]:
    """Run every unfinished cell of `spec` (or, with `dry_run`, list them with estimates);
    `only` (see `parse_only`) restricts the grid to a part of it."""
    cells = [c for c in expand(spec) if selected(c, only or {})]
    if not cells:
        raise UserError("no cell of the grid matches the --only filters")
    if dry_run:  # reads the store if there is one; writes nothing
        done = set()
        if store_path(results_dir).is_file():
            reader = ResultsStore(results_dir, read_only=True)
            done = reader.finished()
            reader.close()
        todo = [c for c in cells if c["id"] not in done]
        total = 0.0
        for cell in cells:
            seconds = estimate_seconds(cell)
            total += 0 if cell["id"] in done else seconds
            state = "done" if cell["id"] in done else f"~{seconds / 60:.0f} min"
            echo(f"{cell['id']}  {cell['kind']:<8} {cell['model']:<12} {cell['task']:<7} {cell['strategy']:<10} "
                 f"{cell['mitigation']:<10} budget {cell['budget']:<6g} seed {cell['seed']}  {state}")
        echo(f"{len(cells)} cells, {len(cells) - len(todo)} finished; about {total / 60:.0f} min of CPU time left")
        return cells
    store = ResultsStore(results_dir)
    done = store.finished()
    todo = [c for c in cells if c["id"] not in done]
    for i, cell in enumerate(todo, 1):
        echo(f"[{i}/{len(todo)}] {cell['kind']} {cell['model']} {cell['task']} {cell['strategy']} "
             f"{cell['mitigation']} budget {cell['budget']:g} seed {cell['seed']}")
        metrics, timings = run_cell(cell, store)
        store.record(spec.name, cell, metrics, timings)
    store.close()
    return cells
