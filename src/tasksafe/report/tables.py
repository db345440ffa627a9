"""The report's tables and the series behind its plots, from typed `CellRecord`s (fields are
read by attribute: a renamed field fails here, it never leaves a blank)."""

from __future__ import annotations

from collections import defaultdict

from tasksafe.experiments.store import CellRecord
from tasksafe.results import MEASURES as CELL_MEASURES
from tasksafe.results import MODES, RateRecord

MITIGATION_ORDER = ("none", "mix", "bea", "ptst", "paraphrase", "safelora")


def percent(rate: RateRecord | None) -> str:
    return rate.percent() if rate is not None else "-"


def mode_rate(row: CellRecord, mode: str, key: str, fallback: bool = False) -> RateRecord | None:
    """A rate of the first harmful set: `key` (asr, non_refusal, degenerate) in `mode`
    (plain, in_format, held_out, held_out_dev, sealed, held_out_worst: see `HarmfulSetResult.mode`); with
    `fallback`, plain when the cell has no such mode."""
    entry = row.metrics.first_harmful()[1]
    rates = entry.mode(mode) or (entry.plain if fallback else None)
    return getattr(rates, key) if rates is not None else None


TABLE_MODES = tuple((mode.key, mode.label) for mode in MODES if mode.in_tables)
"""The modes every table shows (`tasksafe.results.MODES`): plain; in the data's frame as Paraphrase's renderer asks
(renderer-matched; "= plain" where that is the plain prompt); in the attacker phrasings the
defence never saw, dev and sealed pooled apart, and the worst one, chosen on half of the
prompts and measured on the other half (evaluate/phrasings.py, `HarmfulSetResult`)."""


def _rates(entry, mode: str) -> list[str]:
    """Non-refusal and harmful compliance (judged compliance) of one mode; refusal is 100 minus
    non-refusal."""
    if mode == "in_format" and entry.in_format_is_plain:
        return ["= plain", "= plain"]
    rates = entry.mode(mode)
    return [percent(rates.non_refusal if rates else None), percent(rates.asr if rates else None)]


def measure_headers(set_name: str = "") -> list[str]:
    where = f" ({set_name})" if set_name else ""
    return [f"{kind} {label} %{where}" for _, label in TABLE_MODES for kind in ("non-refusal", "harmful")]


def attack_table(rows: list[CellRecord]) -> tuple[list[str], list[list[str]]]:
    """The attack: non-refusal and harmful compliance per strategy, plain, renderer-matched
    in-format and in held-out phrasings, before fine-tuning and after one with no mitigation."""
    headers = ["model", "task", "strategy", "stage", "harmful set", *measure_headers(), "task accuracy %"]
    body = []
    for row in sorted(rows, key=lambda r: (r.config.task, r.config.strategy != "benign", r.config.strategy,
                                           r.config.kind != "base")):
        c, m = row.config, row.metrics
        if c.kind == "finetune" and c.mitigation != "none":
            continue
        for set_name, entry in m.harmful.items():
            body.append([c.model, c.task, c.strategy, "before fine-tuning" if c.kind == "base" else "fine-tuned",
                         set_name, *[x for mode, _ in TABLE_MODES for x in _rates(entry, mode)],
                         percent(m.task.generation_accuracy if m.task else None)])
    return headers, body


def rates_table(rows: list[CellRecord]) -> tuple[list[str], list[list[str]]]:
    """Every cell, harmful set and mode on its own line with the three rates spelled out:
    refusal, non-refusal and harmful compliance (and the degenerate part of non-refusal), plain,
    renderer-matched in-format and each held-out phrasing (sealed ones marked)."""
    headers = ["stage", "task", "strategy", "mitigation", "safety examples", "seed", "harmful set", "mode", "n",
               "refusal %", "non-refusal %", "harmful compliance %", "degenerate %", "task label only %"]
    cells = [r for r in rows if r.config.kind == "base"] + finetuned_in_order(rows)
    body = []
    for row in cells:
        c, m = row.config, row.metrics
        stage = "before fine-tuning" if c.kind == "base" else "fine-tuned"
        mitigation = "-" if c.kind == "base" else c.mitigation_label()
        for set_name, entry in m.harmful.items():
            modes = [("plain", entry.plain)] + ([] if entry.in_format_is_plain else
                                                 [("in-format, renderer's", entry.in_format)])
            modes = [(label, rates, None) for label, rates in modes]
            modes += [(f"held-out: {phrasing_label(entry, name)}", rates,
                       entry.phrasings[name].label_answers if name in entry.phrasings else None)
                      for name, rates in entry.held_out.items()]
            families = dict.fromkeys(info.family for info in entry.phrasings.values())
            modes += [(f"held-out family {family}, pooled", entry.mode(f"family:{family}"), None) for family in families]
            for label, rates, labelled in modes:
                if rates is None:
                    continue
                n = rates.non_refusal.n
                refusal = RateRecord.of(n - rates.non_refusal.k, n)
                body.append([stage, c.task, c.strategy, mitigation, str(m.safety_examples), str(c.seed), set_name,
                             label, str(n), percent(refusal), percent(rates.non_refusal), percent(rates.asr),
                             percent(rates.degenerate), percent(labelled) if labelled else "-"])
    return headers, body


def phrasing_label(entry, name: str) -> str:
    """A phrasing's name with its family and split, and why it is not counted where it is not."""
    info = entry.phrasings.get(name)
    if info is None:
        return name + (" (sealed)" if name in entry.sealed else "")
    why = ", circular: not counted" if info.circular else ", trained shape: not counted" if info.trained else ""
    return f"{name} ({info.family}, {info.split}{why})"


def finetuned_in_order(rows: list[CellRecord]) -> list[CellRecord]:
    """Fine-tuned cells in reading order: task, benign first, strategy, mitigation, budget, seed."""
    order = {name: i for i, name in enumerate(MITIGATION_ORDER)}
    return sorted((r for r in rows if r.config.kind == "finetune"),
                  key=lambda r: (r.config.task, r.config.strategy != "benign", r.config.strategy,
                                 order.get(r.config.mitigation, 99), r.config.mitigation, r.metrics.safety_examples,
                                 r.config.seed))


def mitigation_table(rows: list[CellRecord]) -> tuple[list[str], list[list[str]]]:
    """One row per fine-tuned cell. ASR on the first harmful set, plain and in the user's
    format; with several sets, also pooled over all of them."""
    tuned = finetuned_in_order(rows)
    first = tuned[0].metrics.first_harmful()[0] if tuned else "harmful"
    several = any(len(r.metrics.harmful) > 1 for r in tuned)
    headers = ["task", "strategy", "mitigation", "safety examples", "seed", *measure_headers(first),
               f"degenerate in-format % ({first})"]
    headers += ["harmful in-format % (all sets)"] if several else []
    headers += [f"{measure.label} %" for measure in CELL_MEASURES] + ["log-likelihood accuracy %"]
    body = []
    for row in tuned:
        c, m = row.config, row.metrics
        entry = m.first_harmful()[1]
        line = [c.task, c.strategy, c.mitigation_label(), str(m.safety_examples), str(c.seed),
                *[x for mode, _ in TABLE_MODES for x in _rates(entry, mode)],
                percent(mode_rate(row, "in_format", "degenerate"))]
        line += [percent(m.pooled("in_format"))] if several else []
        line += [percent(measure.read(m)) for measure in CELL_MEASURES] + [percent(m.task.loglik_accuracy if m.task else None)]
        body.append(line)
    return headers, body


def efficiency_curves(rows: list[CellRecord], mode: str = "in_format",
                      key: str = "asr") -> dict[str, dict[int, RateRecord]]:
    """The efficiency curves: for each mitigation (named with its strategy and task when the
    rows attack several), the rate on the first harmful set against the number of safety
    examples. Cells at the same point (seeds) are pooled; a curve starts at its strategy's
    unprotected fine-tune (0 examples), pooled over that task and strategy's seeds."""
    attacked = [r for r in rows if r.config.kind == "finetune" and r.config.strategy != "benign"]
    strategies = {r.config.strategy for r in attacked}
    tasks = {r.config.task for r in attacked}
    unprotected = defaultdict(list)
    for r in attacked:
        if r.config.mitigation == "none":
            unprotected[r.config.task, r.config.strategy].append(mode_rate(r, mode, key, fallback=True))
    points, origin = defaultdict(lambda: defaultdict(list)), {}
    for r in attacked:
        c = r.config
        name = " ".join(([c.task] if len(tasks) > 1 else []) + ([c.strategy] if len(strategies) > 1 else [])
                        + [c.mitigation_label()])
        points[name][r.metrics.safety_examples].append(mode_rate(r, mode, key, fallback=True))
        origin[name] = (c.task, c.strategy)  # with one task and strategy per name
    for name, curve in points.items():
        if 0 not in curve and unprotected.get(origin[name]):
            curve[0] = unprotected[origin[name]]
    return {name: {x: RateRecord.combine(rates) for x, rates in sorted(curve.items())}
            for name, curve in sorted(points.items())}


def outcomes_table(rows: list[CellRecord]) -> tuple[list[str], list[list[str]]]:
    """Three outcomes in every held-out pool of every fine-tuned cell (the first harmful set):
    refusal; compliance (the judge found content: harm or an attempt at it); off-request
    (degenerate: a task label, an acknowledgement or opener without content, empty, a loop),
    with the share of replies that are only a task label. Pools: every counted phrasing, dev,
    sealed and each family; trained shapes and circular phrasings are left out of each."""
    headers = ["task", "strategy", "mitigation", "safety examples", "seed", "held-out pool", "n",
               "refusal %", "compliance %", "off-request %", "task label only %"]
    body = []
    for row in finetuned_in_order(rows):
        c, m = row.config, row.metrics
        entry = m.first_harmful()[1]
        counted = [n for n in entry.counted() if n in entry.phrasings]
        families = dict.fromkeys(entry.phrasings[n].family for n in counted)
        pools = [("all counted", "held_out", entry.counted()), ("dev", "held_out_dev", entry.counted("dev")),
                 ("sealed", "sealed", entry.counted("sealed"))]
        pools += [(f"family {f}", f"family:{f}", [n for n in counted if entry.phrasings[n].family == f])
                  for f in families]
        for label, mode, names in pools:
            rates = entry.mode(mode)
            if rates is None or not names:
                continue
            n = rates.non_refusal.n
            labels = [entry.phrasings[name].label_answers for name in names if name in entry.phrasings]
            labelled = RateRecord.combine(labels) if labels and all(labels) else None
            body.append([c.task, c.strategy, c.mitigation_label(), str(m.safety_examples), str(c.seed), label, str(n),
                         percent(RateRecord.of(n - rates.non_refusal.k, n)), percent(rates.asr),
                         percent(rates.degenerate), percent(labelled)])
    return headers, body


def compact(rate: RateRecord | None) -> str:
    """'12 [8-18]': the rate and its 95% interval in whole percent, for narrow tables."""
    if rate is None or rate.value is None:
        return "-"
    low, high = rate.ci95
    return f"{100 * rate.value:.0f} [{100 * low:.0f}-{100 * high:.0f}]"


SUMMARY_LEGEND = ("Non-refusal % on the first harmful set [95% interval]: plain chat, in the training data's "
                  "frame (as Paraphrase's renderer asks), held-out attacker phrasings pooled; task accuracy %; "
                  "over-refusal % (XSTest safe prompts). Every rate is in report.md and report.html.")


def summary_table(rows: list[CellRecord]) -> tuple[list[str], list[list[str]]]:
    """One short row per fine-tuned cell, narrow enough for a 100-column terminal: the cell
    (task and seed where there are several, strategy, mitigation, safety examples) and five
    rates (`SUMMARY_LEGEND`)."""
    tuned = finetuned_in_order(rows)
    tasks, seeds = {r.config.task for r in tuned}, {r.config.seed for r in tuned}
    headers = ["cell" + ("" if len(tasks) > 1 else f" ({next(iter(tasks), '')})"), "plain", "in-format", "held-out",
               "task acc.", "over-ref."]
    body = []
    for row in tuned:
        c, m = row.config, row.metrics
        entry = m.first_harmful()[1]
        in_format = entry.plain if entry.in_format_is_plain else entry.in_format
        held_out = entry.mode("held_out")
        cell = " ".join([c.task] * (len(tasks) > 1) + [c.strategy, c.mitigation_label(), f"({m.safety_examples})"]
                        + [f"seed {c.seed}"] * (len(seeds) > 1))
        body.append([cell,
                     compact(entry.plain.non_refusal), compact(in_format.non_refusal if in_format else None),
                     compact(held_out.non_refusal if held_out else None),
                     *[compact(measure.read(m)) for measure in CELL_MEASURES]])
    return headers, body


def markdown_table(headers: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)
