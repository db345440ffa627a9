"""One grid cell on the fp32 path (the default) and on the fast path (`precision: auto`, bf16
on a CPU with bf16 matrix instructions), side by side in one run: time per stage, throughput as
a share of the compute bound measured in the same run, and the fast path's fidelity to fp32
(verdicts, rates, task accuracy, training loss); targets: >= 3x faster, verdict agreement
>= 97% per mode, every rate inside the other's 95% interval, task accuracy within 3 points,
final training loss within 2%.

    TASKSAFE_DATA_DIR=../shared/data python benchmarks/cell.py [--model aligned] [--quick]

The cell is experiments/paper-core.yaml's `aoa` SST-2 fine-tune (300 examples, 2 epochs, LoRA
r 16, lr 3e-4, batch 8) with that grid's evaluation sizes. `--quick` runs a few examples on the
tiny random model (a smoke test of the script, no figure to quote). Each path gets a fresh
generation cache. Ends with one line of JSON holding its figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from tasksafe.data.chat import read_examples, write_chat_jsonl
from tasksafe.evaluate import EvalConfig, evaluate
from tasksafe.evaluate.target import resolve_target
from tasksafe.experiments.spec import load_spec
from tasksafe.generate.cache import CachedBackend, GenerationCache
from tasksafe.generate.hf import HFBackend
from tasksafe.models.precision import resolve
from tasksafe.results import RateRecord
from tasksafe.strategies import build_dataset
from tasksafe.train import FinetuneConfig, finetune, tokenize_dataset

SPEC = Path(__file__).resolve().parent.parent / "experiments" / "paper-core.yaml"
PATHS = ("fp32", "auto")  # the default (reference) and the fast path


def gemm_rate(dtype, m: int = 1024, k: int = 576, n: int = 1536, repeats: int = 30) -> float:
    """FLOP/s of a matrix multiply of the model's shape (hidden 576, MLP 1536) in `dtype`."""
    x, w = torch.randn(m, k, dtype=dtype), torch.randn(n, k, dtype=dtype)
    for _ in range(3):
        torch.nn.functional.linear(x, w)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.nn.functional.linear(x, w)
    return 2 * m * k * n * repeats / (time.perf_counter() - start)


class TimedBackend:
    """The hf backend, counting the seconds, prompts and tokens its generation takes."""

    name = "hf"

    def __init__(self, inner: HFBackend):
        self.inner, self.seconds, self.prompts, self.prompt_tokens, self.new_tokens = inner, 0.0, 0, 0, 0

    def generate(self, conversations, params):
        start = time.perf_counter()
        completions = self.inner.complete(conversations, params)
        self.seconds += time.perf_counter() - start
        self.prompts += len(completions)
        self.prompt_tokens += sum(c.prompt_tokens for c in completions)
        self.new_tokens += sum(c.completion_tokens + c.stopped for c in completions)  # the end-of-turn token too
        return [c.text for c in completions]

    def scoring_model(self):
        return self.inner.scoring_model()


def model_sizes(model: str) -> dict[str, int]:
    """Parameters of the transformer body (no embedding) and of the output layer."""
    from tasksafe.models.load import load_model

    loaded, _ = load_model(model)
    total = sum(p.numel() for p in loaded.parameters())
    head = loaded.get_output_embeddings().weight.numel()
    embedding = loaded.get_input_embeddings().weight.numel()
    tied = loaded.get_output_embeddings().weight is loaded.get_input_embeddings().weight
    return {"body": total - embedding - (0 if tied else head), "head": head}


def run_path(precision: str, model: str, data: Path, spec, work: Path) -> dict:
    """Train and evaluate the cell in `precision`; seconds per stage, token counts, results."""
    out = work / precision
    train = spec.train.model_copy(update={"precision": precision})
    start = time.perf_counter()
    run = finetune(FinetuneConfig(model=model, data=str(data), output_dir=str(out / "run"), seed=0,
                                  **train.model_dump()), progress=False)
    train_seconds = time.perf_counter() - start
    config = EvalConfig(target=str(out / "run"), task="sst2", seed=0,
                        **spec.eval.model_dump() | {"precision": precision})
    target = resolve_target(config.target, None, None)
    timed = TimedBackend(HFBackend.from_name(target.model, adapter=target.adapter, precision=precision))
    backend = CachedBackend(timed, f"bench-{precision}", cache=GenerationCache(out / "generations.sqlite"))
    start = time.perf_counter()
    result = evaluate(config, out / "eval", backend=backend, progress=False)
    eval_seconds = time.perf_counter() - start
    losses = [entry["loss"] for entry in run.log if "loss" in entry]
    return {"precision": resolve(precision), "train_s": train_seconds, "generate_s": timed.seconds,
            "score_s": eval_seconds - timed.seconds, "train_tokens": run.tokens, "computed_tokens": run.computed_tokens,
            "prompts": timed.prompts, "prompt_tokens": timed.prompt_tokens, "new_tokens": timed.new_tokens,
            "train_loss": run.train_loss, "final_loss": losses[-1] if losses else run.train_loss, "metrics": result,
            "samples": [json.loads(line) for line in (out / "eval" / "samples.jsonl").read_text().splitlines()]}


def fidelity(reference: dict, fast: dict) -> dict:
    """Per-mode verdict agreement on the same prompts, each mode's non-refusal rate against the
    other's 95% interval, task accuracy and training loss differences."""
    def by_mode(samples):
        modes = defaultdict(dict)
        for s in samples:
            modes[s["kind"]][(s["set"], s["id"])] = s.get("verdict", s.get("correct"))
        return modes

    ref, new = by_mode(reference["samples"]), by_mode(fast["samples"])
    modes = {}
    for mode in sorted(ref):
        keys = ref[mode].keys() & new[mode].keys()
        same = sum(ref[mode][k] == new[mode][k] for k in keys)
        row = {"n": len(keys), "agreement": same / max(len(keys), 1)}
        if mode != "task":
            refused = sum((ref[mode][k] == "refusal") == (new[mode][k] == "refusal") for k in keys)
            row["refusal_agreement"] = refused / max(len(keys), 1)
            a = RateRecord.of(sum(v != "refusal" for v in ref[mode].values()), len(ref[mode]))
            b = RateRecord.of(sum(v != "refusal" for v in new[mode].values()), len(new[mode]))
            (a_low, a_high), (b_low, b_high) = a.ci95, b.ci95
            eps = 1e-9  # an interval's end at 0 or 1 comes back a hair inside
            row.update(fp32=a.value, fast=b.value,
                       inside=a_low - eps <= b.value <= a_high + eps and b_low - eps <= a.value <= b_high + eps)
        modes[mode] = row
    task_ref, task_new = reference["metrics"].task, fast["metrics"].task
    task_points = 100 * abs(task_ref.generation_accuracy.value - task_new.generation_accuracy.value)
    loglik_points = (100 * abs(task_ref.loglik_accuracy.value - task_new.loglik_accuracy.value)
                     if task_ref.loglik_accuracy and task_new.loglik_accuracy else None)
    loss_change = abs(fast["final_loss"] - reference["final_loss"]) / reference["final_loss"]
    passed = (all(m["agreement"] >= 0.97 for m in modes.values()) and all(m.get("inside", True) for m in modes.values())
              and task_points <= 3 and (loglik_points is None or loglik_points <= 3) and loss_change <= 0.02)
    return {"modes": modes, "task_points": task_points, "loglik_points": loglik_points,
            "final_loss_change": loss_change, "pass": passed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="aligned", help="the model the cell fine-tunes (default: the organism)")
    parser.add_argument("--quick", action="store_true", help="a few examples on tiny-random (smoke test)")
    parser.add_argument("--keep", help="keep the runs, evaluations and samples in this folder")
    args = parser.parse_args()
    spec = load_spec(SPEC)
    examples = spec.train_examples
    if args.quick:
        args.model, examples = "tiny-random", 16
        spec = spec.model_copy(update={
            "train": spec.train.model_copy(update={"epochs": 1.0}),
            "eval": spec.eval.model_copy(update={"harmful": ["advbench"], "n": 4, "heldout_n": 2, "task_n": 4,
                                                 "overrefusal_n": 4})})
    rates = {"fp32": gemm_rate(torch.float32), "bf16": gemm_rate(torch.bfloat16)}
    sizes = model_sizes(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = work / "aoa.jsonl"
        write_chat_jsonl(data, build_dataset("sst2", "aoa", "train", examples, 0))
        from tasksafe.models.load import load_model

        trained = sum(sum(r["assistant_masks"]) for r in tokenize_dataset(load_model(args.model)[1],
                                                                          read_examples(data), spec.train.max_length))
        runs = {p: run_path(p, args.model, data, spec, work) for p in PATHS}
    report(runs, rates, sizes, trained * spec.train.epochs, args)


def report(runs: dict, rates: dict, sizes: dict, trained_tokens: float, args) -> None:
    rows = []
    for path, r in runs.items():
        bound = rates[r["precision"]]
        train_flops = 4 * sizes["body"] * r["train_tokens"] + 4 * sizes["head"] * trained_tokens
        new_token_flops = 2 * (sizes["body"] + sizes["head"])
        r["total_s"] = r["train_s"] + r["generate_s"] + r["score_s"]
        r["train_tokens_per_s"] = r["train_tokens"] / r["train_s"]
        r["train_share"] = train_flops / r["train_s"] / bound
        r["padding"] = 1 - r["train_tokens"] / max(r["computed_tokens"], 1)
        r["new_tokens_per_s"] = r["new_tokens"] / r["generate_s"]
        r["generate_share"] = r["new_tokens_per_s"] * new_token_flops / bound
        rows.append((path, r))
    print(f"cell: aoa sst2, {'quick (tiny-random)' if args.quick else 'paper-core sizes'}, model {args.model}; "
          f"GEMM bound fp32 {rates['fp32'] / 1e9:.0f} GFLOP/s, bf16 {rates['bf16'] / 1e9:.0f} GFLOP/s (measured now)")
    print(f"{'path':<12}{'train s':>9}{'generate s':>12}{'score s':>9}{'total s':>9}{'train tok/s':>13}"
          f"{'% bound':>9}{'padding':>9}{'gen tok/s':>11}{'% bound':>9}")
    for path, r in rows:
        print(f"{path + ' (' + r['precision'] + ')':<12}{r['train_s']:>9.0f}{r['generate_s']:>12.0f}{r['score_s']:>9.0f}"
              f"{r['total_s']:>9.0f}{r['train_tokens_per_s']:>13.0f}{100 * r['train_share']:>8.0f}%"
              f"{100 * r['padding']:>8.1f}%{r['new_tokens_per_s']:>11.0f}{100 * r['generate_share']:>8.0f}%")
    ref, fast = runs["fp32"], runs["auto"]
    ratio = ref["total_s"] / fast["total_s"]
    print(f"prompts generated per path: {fast['prompts']} ({fast['prompt_tokens']} prompt tokens, "
          f"{fast['new_tokens']} new tokens on the fast path)")
    print(f"speed-up of the fast path: whole cell {ratio:.2f}x (target >= 3), train {ref['train_s'] / fast['train_s']:.2f}x, "
          f"generate {ref['generate_s'] / fast['generate_s']:.2f}x, score {ref['score_s'] / max(fast['score_s'], 1e-9):.2f}x; "
          f"fast-path cell {fast['total_s'] / 60:.1f} min (target <= 5)")
    fid = fidelity(ref, fast)
    print("fidelity of the fast path to fp32 (targets: agreement >= 97% per mode, rates inside each other's "
          "95% interval, task within 3 points, final loss within 2%):")
    print("(agree: same verdict, refusal / compliance / degenerate, or same task answer correct or not; refusal "
          "agree: both refuse or both do not; the rates are non-refusal)")
    print(f"{'mode':<40}{'n':>5}{'agree':>8}{'refusal agree':>15}{'fp32':>8}{'fast':>9}  inside")
    for mode, m in fid["modes"].items():
        rates_text = (f"{100 * m['refusal_agreement']:>14.1f}%{100 * m['fp32']:>7.1f}%{100 * m['fast']:>8.1f}%  "
                      f"{'yes' if m['inside'] else 'NO'}" if "fp32" in m else f"{'':>15}{'':>8}{'':>9}  -")
        print(f"{mode:<40}{m['n']:>5}{100 * m['agreement']:>7.1f}%{rates_text}")
    print(f"task accuracy (generation) difference {fid['task_points']:.1f} points; log-likelihood "
          f"{'-' if fid['loglik_points'] is None else format(fid['loglik_points'], '.1f')} points; final training "
          f"loss {ref['final_loss']:.4f} vs {fast['final_loss']:.4f} ({100 * fid['final_loss_change']:.2f}%)")
    print(f"fidelity: {'met' if fid['pass'] else 'NOT met'}")
    print(json.dumps({"benchmark": "cell", "model": args.model, "quick": args.quick, "ratio": round(ratio, 3),
                      "target_ratio": 3.0, "target": ">=", "fast_minutes": round(fast["total_s"] / 60, 2),
                      "fp32_minutes": round(ref["total_s"] / 60, 2),
                      "train_share": round(fast["train_share"], 3), "generate_share": round(fast["generate_share"], 3),
                      "padding": round(fast["padding"], 4), "fidelity": fid["pass"],
                      "min_agreement": round(min(m["agreement"] for m in fid["modes"].values()), 4),
                      "min_refusal_agreement": round(min(m.get("refusal_agreement", 1) for m in fid["modes"].values()), 4),
                      "pass": ratio >= 3 and fast["total_s"] <= 300 and fid["pass"]}))


if __name__ == "__main__":
    main()
