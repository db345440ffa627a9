"""`tasksafe evaluate`: task accuracy, ASR plain and in-format, over-refusal."""

from __future__ import annotations

import click

from tasksafe.cli.settings import settings_from, settings_options
from tasksafe.evaluate.config import EvalConfig
from tasksafe.results import MODES, EvalResult, RateRecord


def _fmt(rate: RateRecord) -> str:
    low, high = rate.ci95
    return f"{100 * (rate.value or 0):5.1f}% [{100 * low:.1f}, {100 * high:.1f}] n={rate.n}"


def show(result: EvalResult) -> None:
    for set_name, entry in result.harmful.items():
        for mode in MODES:
            rates = entry.mode(mode.key)
            if rates is not None and not (mode.key == "in_format" and entry.in_format_is_plain):
                click.echo(f"{set_name:<24}{mode.short:<16} ASR {_fmt(rates.asr)}   non-refusal {_fmt(rates.non_refusal)}")
    click.echo(f"{'xstest (safe prompts)':<34} over-refusal {_fmt(result.overrefusal.xstest_safe)}")
    if result.task:
        task = result.task
        click.echo(f"{task.task:<24}{task.strategy:<10} accuracy {_fmt(task.generation_accuracy)}"
                   + (f"   log-likelihood {_fmt(task.loglik_accuracy)}" if task.loglik_accuracy else ""))
    v = result.judge.validation
    click.echo(f"judge {result.judge.name}: " + (f"accuracy {v.accuracy:.3f}, kappa {v.kappa:.3f} on held-out XSTest "
                                                 "human labels" if v else
                                                 f"not validated (run `tasksafe judge validate --judge "
                                                 f"{result.judge.name}`)"))


@click.command()
@click.argument("target")
@settings_options(EvalConfig, skip=("target", "judge_options"))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Evaluation directory.")
def evaluate(target, config_file, out_dir, **flags) -> None:
    """Evaluate TARGET (a run directory from `tasksafe finetune`, or a model name/path).

    Writes metrics.json (every rate with n and a Wilson 95% interval) and samples.jsonl
    (prompt, response, verdict, judge). Generations are cached, so re-judging is free and an
    interrupted evaluation resumes. Settings come from their defaults, then --config FILE
    (YAML/JSON), then the flags."""
    from tasksafe.data.io import check_output_dir
    from tasksafe.evaluate import evaluate as run_evaluation

    check_output_dir(out_dir)
    config = settings_from(EvalConfig, config_file, flags, target=target)
    show(run_evaluation(config, out_dir))
    click.echo(f"metrics and samples in {out_dir}")
