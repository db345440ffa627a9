"""The report's PNG plots: the attack, the efficiency curves, task accuracy and over-refusal."""

from __future__ import annotations

from pathlib import Path

from tasksafe.experiments.store import CellRecord
from tasksafe.report.tables import efficiency_curves, mode_rate
from tasksafe.results import MODES, RateRecord

PLOTTED = [mode for mode in MODES if mode.in_plots]
MEASURES = tuple([(m.key, "non_refusal", f"non-refusal, {m.label}") for m in PLOTTED]
                 + [(m.key, "asr", f"harmful compliance, {m.label}") for m in PLOTTED if m.key == "held_out"])
"""The efficiency plot's panels. The renderer-matched prompt is what Paraphrase trains on, so
the held-out phrasings get panels of their own; a broken model can stop refusing yet only
repeat its persona's phrase, so non-refusal and judged harmful compliance are kept apart."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str, title: str) -> tuple[str, str]:
    fig.tight_layout()
    fig.savefig(out / name, dpi=120)
    _pyplot().close(fig)
    return title, name


def attack_plot(rows: list[CellRecord], out: Path) -> tuple[str, str] | None:
    """Non-refusal per strategy before and after fine-tuning (no mitigation), plain,
    renderer-matched in-format and held-out; only the bars there are cells for."""
    attack = [r for r in rows if r.config.kind == "base" or r.config.mitigation == "none"]
    if not attack:
        return None
    strategies = sorted({r.config.strategy for r in attack})
    kinds = [k for k in ("base", "finetune") if any(r.config.kind == k for r in attack)]
    bars = [(kind, mode, f"{'before' if kind == 'base' else 'fine-tuned'}, {label}") for kind in kinds
            for mode, label in ((m.key, m.short) for m in PLOTTED)]
    bars = [b for b in bars if any(mode_rate(r, b[1], "non_refusal") for r in attack if r.config.kind == b[0])]
    fig, ax = _pyplot().subplots(figsize=(8, 3.8))
    width = 0.8 / max(1, len(bars))
    for j, (kind, mode, label) in enumerate(bars):
        values, errors = [], [[], []]
        for s in strategies:
            rate = RateRecord.combine(mode_rate(r, mode, "non_refusal") for r in attack
                                      if r.config.strategy == s and r.config.kind == kind)
            v = rate.value if rate and rate.value is not None else 0.0
            values.append(100 * v)
            errors[0].append(max(0.0, 100 * (v - rate.ci95[0])) if rate else 0)
            errors[1].append(max(0.0, 100 * (rate.ci95[1] - v)) if rate else 0)
        ax.bar([i + (j - (len(bars) - 1) / 2) * width for i in range(len(strategies))], values, width, yerr=errors,
               capsize=2, label=label)
    ax.set_xticks(range(len(strategies)), strategies)
    ax.set_ylabel(f"non-refusal (%), {attack[0].metrics.first_harmful()[0]}")
    ax.set_title("The attack: non-refusal per prompting strategy", fontsize=10)
    ax.legend(fontsize=7)
    return _save(fig, out, "attack.png", "The attack: non-refusal per prompting strategy (95% intervals)")


def efficiency_plot(rows: list[CellRecord], out: Path) -> tuple[str, str] | None:
    """Against the number of safety examples, per mitigation, the three `MEASURES`, with the
    aligned model and the benign fine-tune as dashed references."""
    finetuned = [r for r in rows if r.config.kind == "finetune"]
    attacked = [r for r in finetuned if r.config.strategy != "benign"]
    if not attacked:
        return None
    strategies = {r.config.strategy for r in attacked}
    references = [("aligned model, before fine-tuning", "k",
                   [r for r in rows if r.config.kind == "base" and r.config.strategy in strategies]),
                  ("benign fine-tune", "grey",
                   [r for r in finetuned if r.config.strategy == "benign" and r.config.mitigation == "none"])]
    fig, axes = _pyplot().subplots(1, len(MEASURES), figsize=(16, 4.0), sharey=True)
    for ax, (mode, key, label) in zip(axes, MEASURES):
        for name, points in efficiency_curves(rows, mode, key).items():
            xs = sorted(points)
            ys = [100 * (points[x].value or 0) for x in xs]
            low, high = [100 * points[x].ci95[0] for x in xs], [100 * points[x].ci95[1] for x in xs]
            if len(xs) < 3:  # two budgets are two measurements, not a curve: no line drawn between them
                below = [max(0.0, y - lo) for y, lo in zip(ys, low)]
                above = [max(0.0, hi - y) for y, hi in zip(ys, high)]
                ax.errorbar(xs, ys, yerr=[below, above], fmt="o", capsize=4, label=name)
                continue
            ax.plot(xs, ys, marker="o", label=name)
            ax.fill_between(xs, low, high, alpha=0.15)
        for ref_label, colour, refs in references:
            level = RateRecord.combine(mode_rate(r, mode, key, fallback=True) for r in refs)
            if level is not None and level.value is not None:
                ax.axhline(100 * level.value, color=colour, linestyle="--", linewidth=1, label=ref_label)
        ax.set_xlabel("safety examples in the training set")
        ax.set_title(label, fontsize=9)
    axes[0].set_ylabel(f"% of {attacked[0].metrics.first_harmful()[0]} prompts")
    axes[-1].legend(fontsize=7)
    return _save(fig, out, "efficiency.png", "Efficiency: non-refusal in-format (renderer's and held-out "
                                             "phrasings) and plain, and harmful compliance in held-out phrasings, "
                                             "against the number of safety examples, per mitigation")


def accuracy_plot(rows: list[CellRecord], out: Path) -> tuple[str, str] | None:
    """Task accuracy and over-refusal per strategy and mitigation (cells pooled: k and n summed)."""
    finetuned = [r for r in rows if r.config.kind == "finetune"]
    if not finetuned:
        return None
    label = {id(r): f"{r.config.strategy} {r.config.mitigation_label()}" for r in finetuned}
    groups = sorted(set(label.values()))
    fig, axes = _pyplot().subplots(1, 2, figsize=(9, 3.8))
    panels = ((axes[0], "Task accuracy", lambda r: r.metrics.task.generation_accuracy if r.metrics.task else None),
              (axes[1], "Over-refusal (XSTest)", lambda r: r.metrics.overrefusal.xstest_safe))
    for ax, title, rate_of in panels:
        rates = [RateRecord.combine(rate_of(r) for r in finetuned if label[id(r)] == g) for g in groups]
        ax.bar(groups, [100 * (r.value or 0) if r else 0.0 for r in rates])
        ax.set_ylabel("%")
        ax.set_title(f"{title} per strategy and mitigation", fontsize=9)
        ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    return _save(fig, out, "accuracy_overrefusal.png", "Task accuracy and over-refusal per strategy and mitigation")


def make_plots(rows: list[CellRecord], out: Path) -> list[tuple[str, str]]:
    """Every plot there is data for: (title, file name)."""
    made = [plot(rows, out) for plot in (attack_plot, efficiency_plot, accuracy_plot)]
    return [m for m in made if m]
