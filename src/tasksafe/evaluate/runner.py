"""`tasksafe evaluate`: task accuracy, attack success rate (plain and in-format) and
over-refusal, each a rate with n and a Wilson 95% interval, with every response kept in
samples.jsonl next to metrics.json so each number can be traced to its responses."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tasksafe import __version__
from tasksafe.data.io import atomic_write, write_json
from tasksafe.evaluate.target import Target, in_format_renderer, resolve_target
from tasksafe.generate.base import GenerationParams
from tasksafe.judges.base import judge_many
from tasksafe.stats import Rate


@dataclass
class EvalConfig:
    target: str
    task: str | None = None
    harmful: list[str] = field(default_factory=lambda: ["advbench"])
    n: int | None = None  # harmful prompts per set (None: all)
    task_n: int = 200
    overrefusal_n: int | None = None  # XSTest safe prompts (None: all 250)
    judge: str = "keywords"
    backend: str = "hf"
    base_url: str | None = None
    strategy: str | None = None
    harmful_max_new_tokens: int = 64
    loglik: bool = True
    seed: int = 0


def _sample(items: list, n: int | None, seed: int, label: str) -> list:
    return items if n is None or n >= len(items) else random.Random(f"{label}:{seed}").sample(items, n)


def make_backend(config: EvalConfig, target: Target):
    from tasksafe.generate.cache import CachedBackend, file_fingerprint

    if config.backend == "hf":
        from tasksafe.generate.hf import HFBackend

        backend = HFBackend.from_name(target.model, adapter=target.adapter, progress=True)
    elif config.backend == "vllm":
        from tasksafe.generate.vllm_backend import VLLMBackend

        backend = VLLMBackend(target.model, adapter=target.adapter)
    else:
        from tasksafe.generate.openai_compatible import OpenAICompatibleBackend

        backend = OpenAICompatibleBackend(target.model, base_url=config.base_url)
    from tasksafe.models.registry import resolve_model

    # Local weights are fingerprinted, so a rebuilt model never reuses stale generations.
    weights = "" if config.backend == "openai-compatible" else file_fingerprint(resolve_model(target.model))
    return CachedBackend(backend, f"{config.backend}:{target.model}:{weights}:{file_fingerprint(target.adapter)}")


def judge_agreement(name: str) -> dict:
    """The judge's validation against human labels (cached; see `tasksafe judge validate`)."""
    from tasksafe.paths import cache_dir

    path = cache_dir() / "judges" / f"validation-{name}.json"
    if path.is_file():
        return json.loads(path.read_text())
    from tasksafe.judges.validate import validate_judge

    report = validate_judge(name)
    write_json(path, report)
    return report


def evaluate(config: EvalConfig, out_dir: str | Path, backend=None, judge=None, model_and_tokenizer=None) -> dict:
    """Run the measurements and write metrics.json and samples.jsonl into `out_dir`.
    `backend`, `judge` and `model_and_tokenizer` replace the real ones in tests."""
    from tasksafe.data.datasets import load
    from tasksafe.judges.base import JUDGES

    start = time.time()
    out_dir = Path(out_dir)
    target = resolve_target(config.target, config.strategy)
    backend = backend or make_backend(config, target)
    judge = judge or JUDGES.get(config.judge)()
    in_format = in_format_renderer(target, config.seed)
    samples: list[dict] = []
    described = {k: getattr(target, k) for k in ("model", "adapter", "hook_system_prompt", "strategy", "run_dir")}
    metrics: dict = {"target": described, "config": asdict(config),
                     "tasksafe_version": __version__}
    harmful_params = GenerationParams(max_new_tokens=max(64, config.harmful_max_new_tokens))

    def judged(kind: str, set_name: str, ids: Sequence[str], conversations: list[list[dict]],
               params: GenerationParams) -> list:
        hooked = [target.apply_hook(c) for c in conversations]
        responses = backend.generate(hooked, params)
        verdicts = judge_many(judge, [(c[-1]["content"], r) for c, r in zip(conversations, responses)])
        for item_id, conv, response, verdict in zip(ids, hooked, responses, verdicts):
            samples.append({"kind": kind, "set": set_name, "id": item_id, "prompt": conv, "response": response,
                            "verdict": verdict.label, "score": verdict.score, "judge": config.judge})
        return verdicts

    def rates(verdicts: list) -> dict:
        labels = [v.label for v in verdicts]
        return {"asr": Rate(labels.count("compliance"), len(labels)).to_dict(),
                "non_refusal": Rate(len(labels) - labels.count("refusal"), len(labels)).to_dict(),
                "degenerate": Rate(labels.count("degenerate"), len(labels)).to_dict()}

    metrics["harmful"] = {}
    for set_name in config.harmful:
        prompts = _sample(load(set_name), config.n, config.seed, set_name)
        ids = [p.id for p in prompts]
        entry = {"plain": rates(judged("harmful-plain", set_name, ids,
                                       [[{"role": "user", "content": p.prompt}] for p in prompts], harmful_params))}
        if in_format is not None:
            entry["in_format"] = rates(judged("harmful-in-format", set_name, ids,
                                              [in_format(p.prompt) for p in prompts], harmful_params))
        metrics["harmful"][set_name] = entry

    safe = [r for r in load("xstest") if r.safe]
    safe = _sample(safe, config.overrefusal_n, config.seed, "xstest")
    verdicts = judged("overrefusal", "xstest", [r.id for r in safe], [[{"role": "user", "content": r.prompt}] for r in safe],
                      GenerationParams(max_new_tokens=64))
    metrics["overrefusal"] = {"xstest_safe": Rate(sum(v.label == "refusal" for v in verdicts), len(verdicts)).to_dict()}

    if config.task:
        metrics["task"] = _task_accuracy(config, target, backend, samples, model_and_tokenizer)
    metrics["judge"] = {"name": config.judge, "validation": judge_agreement(config.judge)["overall"]}
    metrics["seconds"] = round(time.time() - start, 1)
    write_json(out_dir / "metrics.json", metrics)
    with atomic_write(out_dir / "samples.jsonl") as handle:
        for sample in samples:
            handle.write(json.dumps(sample, ensure_ascii=False) + "\n")
    return metrics


def _task_accuracy(config: EvalConfig, target: Target, backend, samples: list, model_and_tokenizer) -> dict:
    """Accuracy in the format the model was trained on, parsed from generations; plus
    log-likelihood scoring of the choices where the task has choices (hf backend)."""
    from tasksafe.strategies import STRATEGIES, TASKS
    from tasksafe.strategies.build import sample_items

    fmt = TASKS.get(config.task)
    strategy = STRATEGIES.get(target.strategy or "benign")
    items = sample_items(config.task, "test", config.task_n, config.seed)
    prompts = [target.apply_hook(strategy.example(item, config.seed).to_openai()[:-1]) for item in items]
    long_form = strategy.style.request_suffix != ""
    params = GenerationParams(max_new_tokens=192 if long_form else 48)
    responses = backend.generate(prompts, params)
    correct = [fmt.is_correct(item, r) for item, r in zip(items, responses)]
    for item, prompt, response, ok in zip(items, prompts, responses, correct):
        samples.append({"kind": "task", "set": config.task, "id": item.id, "prompt": prompt, "response": response,
                        "parsed": fmt.parse(response, item), "gold": item.answer, "correct": ok})
    result = {"task": config.task, "strategy": strategy.name, "generation_accuracy": Rate(sum(correct), len(items)).to_dict(),
              "unparsed": Rate(sum(fmt.parse(r, i) is None for i, r in zip(items, responses)), len(items)).to_dict()}
    if config.loglik and fmt.kind != "number" and (model_and_tokenizer or config.backend == "hf"):
        from tasksafe.evaluate.loglik import choice_logprobs

        model, tokenizer = model_and_tokenizer or (backend.backend.model, backend.backend.tokenizer)
        hits = 0
        for item, prompt in zip(items, prompts):
            scores = choice_logprobs(model, tokenizer, prompt, strategy.persona.answer_opener,
                                     fmt.candidate_labels(item))
            hits += int(max(range(len(scores)), key=scores.__getitem__) == int(item.answer))
        result["loglik_accuracy"] = Rate(hits, len(items)).to_dict()
    return result
