"""`tasksafe evaluate`: task accuracy, ASR plain and in-format, over-refusal."""

from __future__ import annotations

import click

from tasksafe.cli.params import AT_LEAST_ONE, AT_LEAST_ZERO


def _show(metrics: dict) -> None:
    def fmt(rate: dict) -> str:
        low, high = rate["ci95"]
        return f"{100 * rate['value']:5.1f}% [{100 * low:.1f}, {100 * high:.1f}] n={rate['n']}"

    for set_name, entry in metrics["harmful"].items():
        for mode, rates in entry.items():
            click.echo(f"{set_name:<24}{mode:<10} ASR {fmt(rates['asr'])}   non-refusal {fmt(rates['non_refusal'])}")
    click.echo(f"{'xstest (safe prompts)':<34} over-refusal {fmt(metrics['overrefusal']['xstest_safe'])}")
    if "task" in metrics:
        task = metrics["task"]
        click.echo(f"{task['task']:<24}{task['strategy']:<10} accuracy {fmt(task['generation_accuracy'])}"
                   + (f"   log-likelihood {fmt(task['loglik_accuracy'])}" if "loglik_accuracy" in task else ""))
    v = metrics["judge"]["validation"]
    click.echo(f"judge {metrics['judge']['name']}: accuracy {v['accuracy']:.3f}, kappa {v['kappa']:.3f} "
               f"on held-out XSTest human labels")


@click.command()
@click.argument("target")
@click.option("--task", default=None, help="Task for accuracy (in the format the run was trained on).")
@click.option("--harmful", default="advbench", show_default=True, help="Harmful set(s), comma-separated.")
@click.option("--n", type=AT_LEAST_ONE, default=None, help="Harmful prompts sampled per set (default: the whole set).")
@click.option("--task-n", type=AT_LEAST_ONE, default=200, show_default=True, help="Task test items sampled.")
@click.option("--overrefusal-n", type=AT_LEAST_ONE, default=None, help="XSTest safe prompts sampled (default: all 250).")
@click.option("--judge", default="keywords", show_default=True, help="keywords, embedding, ...")
@click.option("--backend", type=click.Choice(["hf", "vllm", "openai-compatible"]), default="hf", show_default=True)
@click.option("--base-url", default=None, help="Endpoint for --backend openai-compatible.")
@click.option("--strategy", default=None, help="In-format frame for a plain model (a run knows its own).")
@click.option("--max-new-tokens", type=click.IntRange(min=64), default=64, show_default=True, help="For harmful prompts (at least 64).")
@click.option("--seed", type=AT_LEAST_ZERO, default=0, show_default=True)
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Evaluation directory.")
def evaluate(target, task, harmful, n, task_n, overrefusal_n, judge, backend, base_url, strategy, max_new_tokens, seed,
             out_dir) -> None:
    """Evaluate TARGET (a run directory from `tasksafe finetune`, or a model name/path).

    Writes metrics.json (every rate with n and a Wilson 95% interval) and samples.jsonl
    (prompt, response, verdict, judge). Generations are cached, so re-judging is free and an
    interrupted evaluation resumes."""
    from tasksafe.data.io import check_output_dir
    from tasksafe.evaluate import EvalConfig
    from tasksafe.evaluate import evaluate as run_evaluation

    check_output_dir(out_dir)
    config = EvalConfig(target=target, task=task, harmful=[h.strip() for h in harmful.split(",") if h.strip()], n=n,
                        task_n=task_n, overrefusal_n=overrefusal_n, judge=judge, backend=backend, base_url=base_url,
                        strategy=strategy, harmful_max_new_tokens=max_new_tokens, seed=seed)
    _show(run_evaluation(config, out_dir))
    click.echo(f"metrics and samples in {out_dir}")
