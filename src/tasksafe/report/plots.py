"""The report's PNG plots: the attack, the efficiency curves, task accuracy and over-refusal."""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path

from tasksafe.experiments.store import CellRecord
from tasksafe.report.tables import efficiency_curves, mode_rate
from tasksafe.results import MODES, RateRecord

PLOTTED = [mode for mode in MODES if mode.in_plots]
PANELS = tuple([(m.key, "non_refusal", f"non-refusal, {m.label}") for m in PLOTTED]
                 + [(m.key, "asr", f"harmful compliance, {m.label}") for m in PLOTTED if m.key == "held_out"])
"""The efficiency plot's panels. The renderer-matched prompt is what Paraphrase trains on, so
the held-out phrasings get panels of their own; a broken model can stop refusing yet only
repeat its persona's phrase, so non-refusal and judged harmful compliance are kept apart."""


def _pyplot():
    from tasksafe.errors import require

    require("matplotlib", "report")
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


def _wrapped(name: str) -> str:
    return textwrap.fill(name, 44)


def efficiency_groups(rows: list[CellRecord]) -> list[tuple[str, str]]:
    """The (task, strategy) pairs with at least one protected cell: one row of panels each."""
    return sorted({(r.config.task, r.config.strategy) for r in rows if r.config.kind == "finetune"
                   and r.config.strategy != "benign" and r.config.mitigation != "none"})


def efficiency_plot(rows: list[CellRecord], out: Path) -> tuple[str, str] | None:
    """One row of panels per task and strategy (the `PANELS` against the number of safety
    examples, one curve per mitigation), with that task's aligned model and benign fine-tune
    as dashed references; so a grid of many tasks and attacks stays readable."""
    groups = efficiency_groups(rows)
    if not groups:
        return None
    plt = _pyplot()
    fig, grid = plt.subplots(len(groups), len(PANELS), figsize=(19, 3.1 * len(groups)), sharey=True, squeeze=False)
    names = sorted({r.config.mitigation_label() for r in rows if r.config.kind == "finetune"} - {"none"})
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    tint = {name: palette[i % len(palette)] for i, name in enumerate(names)}  # one mitigation, one colour
    for axes, (task, strategy) in zip(grid, groups):
        mine = [r for r in rows if r.config.task == task and r.config.strategy == strategy]
        references = [("aligned model, before fine-tuning", "k", [r for r in mine if r.config.kind == "base"]),
                      ("benign fine-tune", "grey", [r for r in rows if r.config.task == task and r.config.kind ==
                                                    "finetune" and r.config.strategy == "benign"
                                                    and r.config.mitigation == "none"])]
        for ax, (mode, key, label) in zip(axes, PANELS):
            for name, points in efficiency_curves(mine, mode, key).items():
                if name == "none":  # every curve starts at the unprotected fine-tune
                    continue
                xs = sorted(points)
                ys = [100 * (points[x].value or 0) for x in xs]
                low, high = [100 * points[x].ci95[0] for x in xs], [100 * points[x].ci95[1] for x in xs]
                if len(xs) < 3:  # two budgets are two measurements, not a curve: no line drawn between them
                    below = [max(0.0, y - lo) for y, lo in zip(ys, low)]
                    above = [max(0.0, hi - y) for y, hi in zip(ys, high)]
                    ax.errorbar(xs, ys, yerr=[below, above], fmt="o", capsize=4, label=_wrapped(name),
                                color=tint[name])
                    continue
                ax.plot(xs, ys, marker="o", label=_wrapped(name), color=tint[name])
                ax.fill_between(xs, low, high, alpha=0.15, color=tint[name])
            for ref_label, colour, refs in references:
                level = RateRecord.combine(mode_rate(r, mode, key, fallback=True) for r in refs)
                if level is not None and level.value is not None:
                    ax.axhline(100 * level.value, color=colour, linestyle="--", linewidth=1, label=ref_label)
            ax.set_title(f"{task} {strategy}: {label}", fontsize=8)
            ax.set_ylim(-3, 103)
        axes[0].set_ylabel(f"% of {mine[0].metrics.first_harmful()[0]} prompts")
        axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    for ax in grid[-1]:
        ax.set_xlabel("safety examples in the training set")
    return _save(fig, out, "efficiency.png", "Efficiency, per task and strategy: non-refusal plain, in the "
                                             "renderer's frame and in the held-out phrasings, and harmful compliance "
                                             "in the held-out phrasings, against the number of safety examples, per "
                                             "mitigation (95% intervals)")


def accuracy_bars(rows: list[CellRecord]) -> list[tuple[str, list[CellRecord]]]:
    """The accuracy plot's bars, top to bottom: one per fine-tuned configuration (task, strategy,
    mitigation with its options, safety examples), its seeds together; a long mitigation label
    is shortened on the bar, never merged with another configuration's."""
    bars = defaultdict(list)
    for r in rows:
        if r.config.kind == "finetune":
            c = r.config
            bars[c.task, c.strategy, c.mitigation != "none", c.mitigation_label(), r.metrics.safety_examples].append(r)
    return [(f"{task} {strategy} " + (f"{textwrap.shorten(label, 48, placeholder='...)')}, {n}" if protected else label),
             bars[task, strategy, protected, label, n]) for task, strategy, protected, label, n in sorted(bars)]


def accuracy_plot(rows: list[CellRecord], out: Path) -> tuple[str, str] | None:
    """Task accuracy and over-refusal per fine-tuned configuration (`accuracy_bars`; seeds
    pooled: k and n summed), as horizontal bars with 95% intervals."""
    bars = accuracy_bars(rows)[::-1]  # barh draws bottom up
    if not bars:
        return None
    fig, axes = _pyplot().subplots(1, 2, figsize=(13, 1.2 + 0.22 * len(bars)), sharey=True)
    panels = ((axes[0], "Task accuracy", lambda r: r.metrics.task.generation_accuracy if r.metrics.task else None),
              (axes[1], "Over-refusal (XSTest)", lambda r: r.metrics.overrefusal.xstest_safe))
    for ax, title, rate_of in panels:
        rates = [RateRecord.combine(rate_of(r) for r in cells) for _, cells in bars]
        values = [100 * (r.value or 0) if r else 0.0 for r in rates]
        errors = [[max(0.0, v - 100 * r.ci95[0]) if r else 0 for v, r in zip(values, rates)],
                  [max(0.0, 100 * r.ci95[1] - v) if r else 0 for v, r in zip(values, rates)]]
        ax.barh(range(len(bars)), values, xerr=errors, capsize=2)
        ax.set_yticks(range(len(bars)), [name for name, _ in bars])
        ax.set_xlabel("%")
        ax.set_xlim(0, 100)
        ax.set_title(f"{title} (seeds pooled)", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    return _save(fig, out, "accuracy_overrefusal.png", "Task accuracy and over-refusal per task, strategy, "
                                                       "mitigation and number of safety examples (95% intervals)")


def _over_refusal(rows: list[CellRecord]) -> RateRecord | None:
    return RateRecord.combine(r.metrics.overrefusal.xstest_safe for r in rows)


def _held_out(rows: list[CellRecord]) -> RateRecord | None:
    return RateRecord.combine(mode_rate(r, "sealed", "non_refusal") for r in rows)


def tradeoff_points(rows: list[CellRecord], task: str, strategy: str = "aoa") -> dict:
    """The trade-off plot's points for one task: per mitigation, (safety examples, over-refusal,
    held-out sealed non-refusal) through its budgets, seeds pooled; and the references (the
    organism, the unprotected tune, the benign tune) as (over-refusal, held-out)."""
    mine = [r for r in rows if r.config.task == task]
    tuned = [r for r in mine if r.config.kind == "finetune" and r.config.strategy == strategy]
    curves: dict[str, list[tuple[int, RateRecord, RateRecord]]] = defaultdict(list)
    by_point = defaultdict(list)
    for r in tuned:
        if r.config.mitigation != "none":
            by_point[r.config.mitigation_label(), r.metrics.safety_examples].append(r)
    for (name, n), cells in sorted(by_point.items()):
        x, y = _over_refusal(cells), _held_out(cells)
        if x and y and x.value is not None and y.value is not None:
            curves[name].append((n, x, y))
    references = {
        "organism (before fine-tuning)": [r for r in mine if r.config.kind == "base" and r.config.strategy == strategy],
        "unprotected tune": [r for r in tuned if r.config.mitigation == "none"],
        "benign tune": [r for r in mine if r.config.kind == "finetune" and r.config.strategy == "benign"
                        and r.config.mitigation == "none"]}
    marks = {}
    for label, cells in references.items():
        x, y = _over_refusal(cells), _held_out(cells)
        if x and x.value is not None and y and y.value is not None:
            marks[label] = (x, y)
    return {"curves": dict(curves), "references": marks}


def tradeoff_plot(rows: list[CellRecord], out: Path) -> tuple[str, str] | None:
    """For `aoa` on each task: over-refusal (x) against held-out sealed non-refusal (y), one line
    per mitigation through its budgets (labelled with the number of safety examples), the
    organism, the unprotected and the benign tune marked: how much helpfulness each defence
    pays for how much protection where it was not trained."""
    tasks = sorted({r.config.task for r in rows if r.config.strategy == "aoa" and r.config.kind == "finetune"})
    panels = [(task, tradeoff_points(rows, task)) for task in tasks]
    panels = [(task, points) for task, points in panels if points["curves"]]
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.6), squeeze=False)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = sorted({name for _, points in panels for name in points["curves"]})
    tint = {name: palette[i % len(palette)] for i, name in enumerate(names)}
    shapes = {"organism (before fine-tuning)": ("*", "k"), "unprotected tune": ("X", "tab:red"),
              "benign tune": ("s", "grey")}
    for ax, (task, points) in zip(axes[0], panels):
        for name, curve in points["curves"].items():
            xs, ys = [100 * x.value for _, x, _ in curve], [100 * y.value for _, _, y in curve]
            ax.plot(xs, ys, marker="o", color=tint[name], label=_wrapped(name))
            for (n, _, _), x, y in zip(curve, xs, ys):
                ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7, color=tint[name])
        for label, (x, y) in points["references"].items():
            marker, colour = shapes[label]
            ax.scatter([100 * x.value], [100 * y.value], marker=marker, s=90, color=colour, label=label, zorder=3)
        ax.set_xlim(-3, 103)
        ax.set_ylim(-3, 103)
        ax.set_xlabel("over-refusal, XSTest safe prompts refused (%)")
        ax.set_ylabel("held-out sealed phrasings not refused (%)")
        ax.set_title(f"{task} aoa: protection where it was not trained vs. helpfulness", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    return _save(fig, out, "tradeoff.png", "For aoa: over-refusal against held-out sealed non-refusal, one line per "
                                           "mitigation through its budgets (points labelled with the number of safety "
                                           "examples; seeds pooled), the organism and the benign and unprotected "
                                           "tunes marked; lower left is better")


def make_plots(rows: list[CellRecord], out: Path) -> list[tuple[str, str]]:
    """Every plot there is data for: (title, file name)."""
    made = [plot(rows, out) for plot in (attack_plot, efficiency_plot, accuracy_plot, tradeoff_plot)]
    return [m for m in made if m]
