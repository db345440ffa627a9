"""`tasksafe report`: Markdown and self-contained HTML with tables and plots, from the
results store alone (it never retrains or regenerates)."""

from __future__ import annotations

import base64
import html
from collections import defaultdict
from pathlib import Path

from tasksafe.data.io import atomic_write
from tasksafe.errors import OutputError
from tasksafe.experiments.store import ResultsStore, StoreError


def percent(rate: dict | None) -> str:
    if not rate:
        return "-"
    low, high = rate["ci95"]
    return f"{100 * rate['value']:.1f} [{100 * low:.0f}, {100 * high:.0f}]"


def _first_harmful(metrics: dict) -> tuple[str, dict]:
    name = next(iter(metrics["harmful"]))
    return name, metrics["harmful"][name]


def attack_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """ASR per strategy: the model before fine-tuning (in the strategy's frame) and after a
    fine-tune with no mitigation."""
    headers = ["model", "task", "strategy", "stage", "harmful set", "ASR plain %", "ASR in-format %",
               "non-refusal in-format %", "task accuracy %"]
    body = []
    for row in sorted(rows, key=lambda r: (r["config"]["task"], r["config"]["strategy"] != "benign",
                                           r["config"]["strategy"], r["config"]["kind"] != "base")):
        c, m = row["config"], row["metrics"]
        if c["kind"] == "finetune" and c["mitigation"] != "none":
            continue
        for set_name, entry in m["harmful"].items():
            body.append([c["model"], c["task"], c["strategy"], "before fine-tuning" if c["kind"] == "base" else "fine-tuned",
                         set_name, percent(entry["plain"]["asr"]), percent(entry.get("in_format", {}).get("asr")),
                         percent(entry.get("in_format", {}).get("non_refusal")),
                         percent((m.get("task") or {}).get("generation_accuracy"))])
    return headers, body


def pooled(metrics: dict, mode: str, key: str = "asr") -> dict | None:
    """One rate over every harmful set of a cell (k and n summed), with its Wilson interval."""
    return combined([entry[mode][key] for entry in metrics["harmful"].values() if mode in entry])


def mitigation_label(config: dict) -> str:
    """A cell's mitigation with the options its spec gave, e.g. "paraphrase (placement=slot)"."""
    options = config.get("options") or {}
    extra = ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return f"{config['mitigation']} ({extra})" if extra else config["mitigation"]


def combined(rates: list[dict | None]) -> dict | None:
    """Rates of several cells (seeds, tasks) that share one point of a plot, as one rate: k and
    n summed, with its Wilson interval. None when there is none."""
    from tasksafe.stats import Rate

    rates = [r for r in rates if r]
    return Rate(sum(r["k"] for r in rates), sum(r["n"] for r in rates)).to_dict() if rates else None


def mitigation_table(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """One row per fine-tuned cell. ASR on the first harmful set, plain and in the user's
    format; with several sets, also pooled over all of them."""
    order = {name: i for i, name in enumerate(("none", "mix", "bea", "ptst", "paraphrase", "safelora"))}
    tuned = sorted((r for r in rows if r["config"]["kind"] == "finetune"),
                   key=lambda r: (r["config"]["task"], r["config"]["strategy"] != "benign", r["config"]["strategy"],
                                  order.get(r["config"]["mitigation"], 99), r["config"]["mitigation"],
                                  r["metrics"].get("safety_examples", 0), r["config"]["seed"]))
    first = next(iter(tuned[0]["metrics"]["harmful"])) if tuned else "harmful"
    several = any(len(r["metrics"]["harmful"]) > 1 for r in tuned)
    headers = ["task", "strategy", "mitigation", "safety examples", "seed", f"ASR plain % ({first})",
               f"ASR in-format % ({first})", f"degenerate in-format % ({first})"]
    headers += ["ASR in-format % (all sets)"] if several else []
    headers += ["task accuracy %", "log-likelihood accuracy %", "over-refusal %"]
    body = []
    for row in tuned:
        c, m = row["config"], row["metrics"]
        _, entry = _first_harmful(m)
        in_format = entry.get("in_format", {})
        task = m.get("task") or {}
        line = [c["task"], c["strategy"], mitigation_label(c), str(m.get("safety_examples", 0)), str(c["seed"]),
                percent(entry["plain"]["asr"]), percent(in_format.get("asr")), percent(in_format.get("degenerate"))]
        line += [percent(pooled(m, "in_format"))] if several else []
        line += [percent(task.get("generation_accuracy")), percent(task.get("loglik_accuracy")),
                 percent(m["overrefusal"]["xstest_safe"])]
        body.append(line)
    return headers, body


def _save(fig, out: Path, name: str, title: str) -> tuple[str, str]:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(out / name, dpi=120)
    plt.close(fig)
    return title, name


def _rate(row: dict, mode: str, key: str) -> dict:
    entry = _first_harmful(row["metrics"])[1]
    return (entry.get(mode) or entry["plain"])[key]


def efficiency_curves(rows: list[dict], mode: str = "in_format", key: str = "asr") -> dict[str, dict[int, dict]]:
    """The efficiency curves: for each mitigation (named with its strategy and task when the
    rows attack several), the rate on the first harmful set against the number of safety
    examples. Cells at the same point (seeds) are pooled; a curve starts at its strategy's
    unprotected fine-tune (0 examples), pooled over that task and strategy's seeds."""
    attacked = [r for r in rows if r["config"]["kind"] == "finetune" and r["config"]["strategy"] != "benign"]
    strategies = {r["config"]["strategy"] for r in attacked}
    tasks = {r["config"]["task"] for r in attacked}
    unprotected = defaultdict(list)
    for r in attacked:
        if r["config"]["mitigation"] == "none":
            unprotected[r["config"]["task"], r["config"]["strategy"]].append(_rate(r, mode, key))
    points, origin = defaultdict(lambda: defaultdict(list)), {}
    for r in attacked:
        c = r["config"]
        name = " ".join(([c["task"]] if len(tasks) > 1 else []) + ([c["strategy"]] if len(strategies) > 1 else [])
                        + [mitigation_label(c)])
        points[name][r["metrics"].get("safety_examples", 0)].append(_rate(r, mode, key))
        origin[name] = (c["task"], c["strategy"])  # with one task and strategy per name
    for name, curve in points.items():
        if 0 not in curve and unprotected.get(origin[name]):
            curve[0] = unprotected[origin[name]]
    return {name: {x: combined(rates) for x, rates in sorted(curve.items())} for name, curve in sorted(points.items())}


def _plots(rows: list[dict], out: Path) -> list[tuple[str, str]]:
    """PNG plots: (title, file name)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    finetuned = [r for r in rows if r["config"]["kind"] == "finetune"]

    # the attack: ASR per strategy before and after fine-tuning (no mitigation)
    attack = [r for r in rows if r["config"]["kind"] == "base" or r["config"]["mitigation"] == "none"]
    if attack:
        strategies = sorted({r["config"]["strategy"] for r in attack})
        fig, ax = plt.subplots(figsize=(7, 3.6))
        width = 0.2
        for j, (kind, mode, label) in enumerate((("base", "plain", "before, plain"), ("base", "in_format", "before, in-format"),
                                                  ("finetune", "plain", "fine-tuned, plain"),
                                                  ("finetune", "in_format", "fine-tuned, in-format"))):
            values, errors = [], [[], []]
            for s in strategies:
                rate = combined([(_first_harmful(r["metrics"])[1].get(mode) or {}).get("asr") for r in attack
                                 if r["config"]["strategy"] == s and r["config"]["kind"] == kind])
                v = rate["value"] if rate else 0.0
                values.append(100 * v)
                errors[0].append(max(0.0, 100 * (v - rate["ci95"][0])) if rate else 0)
                errors[1].append(max(0.0, 100 * (rate["ci95"][1] - v)) if rate else 0)
            ax.bar([i + (j - 1.5) * width for i in range(len(strategies))], values, width, yerr=errors, capsize=2,
                   label=label)
        ax.set_xticks(range(len(strategies)), strategies)
        ax.set_ylabel(f"ASR (%), {_first_harmful(attack[0]['metrics'])[0]}")
        ax.set_title("The attack: ASR per prompting strategy")
        ax.legend(fontsize=7)
        made.append(_save(fig, out, "attack.png", "The attack: ASR per prompting strategy (95% intervals)"))

    # the efficiency curves: against the number of safety examples, per mitigation, three measures
    # (a broken model can stop refusing yet only repeat its persona's phrase: that is not ASR)
    measures = (("in_format", "asr", "ASR in-format"), ("plain", "asr", "ASR plain"),
                ("in_format", "non_refusal", "non-refusal in-format"))

    attacked = [r for r in finetuned if r["config"]["strategy"] != "benign"]
    if attacked:
        strategies = {r["config"]["strategy"] for r in attacked}
        references = [("aligned model, before fine-tuning", "k", [r for r in rows if r["config"]["kind"] == "base"
                                                                 and r["config"]["strategy"] in strategies]),
                      ("benign fine-tune", "grey", [r for r in finetuned if r["config"]["strategy"] == "benign"
                                                    and r["config"]["mitigation"] == "none"])]
        fig, axes = plt.subplots(1, len(measures), figsize=(13, 3.8), sharey=True)
        for ax, (mode, key, label) in zip(axes, measures):
            for name, points in efficiency_curves(rows, mode, key).items():
                xs = sorted(points)
                ax.plot(xs, [100 * points[x]["value"] for x in xs], marker="o", label=name)
                ax.fill_between(xs, [100 * points[x]["ci95"][0] for x in xs], [100 * points[x]["ci95"][1] for x in xs],
                                alpha=0.15)
            for ref_label, colour, refs in references:
                if refs:
                    ax.axhline(100 * combined([_rate(r, mode, key) for r in refs])["value"], color=colour,
                               linestyle="--", linewidth=1, label=ref_label)
            ax.set_xlabel("safety examples in the training set")
            ax.set_title(label)
        axes[0].set_ylabel(f"% of {_first_harmful(attacked[0]['metrics'])[0]} prompts")
        axes[-1].legend(fontsize=7)
        made.append(_save(fig, out, "efficiency.png", "Efficiency: ASR in-format, ASR plain and non-refusal in-format "
                                                      "against the number of safety examples, per mitigation"))

    # task accuracy and over-refusal per mitigation
    if finetuned:
        mitigations = sorted({mitigation_label(r["config"]) for r in finetuned})
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
        for ax, key, title in ((axes[0], "accuracy", "Task accuracy"), (axes[1], "overrefusal", "Over-refusal (XSTest)")):
            values = []
            for mitigation in mitigations:
                rates = [(r["metrics"].get("task") or {}).get("generation_accuracy") if key == "accuracy"
                         else r["metrics"]["overrefusal"]["xstest_safe"]
                         for r in finetuned if mitigation_label(r["config"]) == mitigation]
                rates = [x for x in rates if x]
                values.append(100 * sum(x["value"] for x in rates) / len(rates) if rates else 0.0)
            ax.bar(mitigations, values)
            ax.set_ylabel("%")
            ax.set_title(title + " per mitigation (mean over cells)")
            ax.tick_params(axis="x", labelrotation=30)
        made.append(_save(fig, out, "accuracy_overrefusal.png", "Task accuracy and over-refusal per mitigation"))
    return made


def markdown_table(headers: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _html_table(headers: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def build_report(results_dir: str | Path, out_dir: str | Path) -> Path:
    """Write report.md, report.html and the PNG plots; returns the Markdown path."""
    store = ResultsStore(results_dir, read_only=True)
    rows = store.rows()
    store.close()
    if not rows:
        raise StoreError(f"{store.path}: no finished cells yet")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(str(out), f"cannot be created ({err.strerror})") from None
    plots = _plots(rows, out)
    tables = [("The attack", attack_table(rows)), ("Mitigations", mitigation_table(rows))]
    judges = {r["metrics"]["judge"]["name"]: r["metrics"]["judge"]["validation"] for r in rows}
    commits = sorted({str(r["git_commit"]) for r in rows})
    versions = rows[-1]["versions"]
    provenance = [
        f"- spec(s): {', '.join(sorted({r['spec'] for r in rows}))}; {len(rows)} finished cells",
        f"- git commit(s): {', '.join(commits)}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}",
    ] + [f"- judge `{name}`: accuracy {v['accuracy']:.3f}, kappa {v['kappa']:.3f} against XSTest human labels "
         f"(held-out models)" for name, v in judges.items()]
    train = next((r["config"]["train"] for r in reversed(rows) if r["config"].get("train")), None)
    if train:
        provenance.append(f"- fine-tuning: {', '.join(f'{k} {v}' for k, v in train.items())}")
    last = rows[-1]["metrics"]
    harmful_n = ", ".join(f"{name} {entry['plain']['asr']['n']}" for name, entry in last["harmful"].items())
    task_n = ((last.get("task") or {}).get("generation_accuracy") or {}).get("n", "no")
    md = ["# tasksafe report", "", "Every rate in % with its Wilson 95% interval. Sample sizes per cell: harmful "
          f"prompts {harmful_n}; {task_n} task items; {last['overrefusal']['xstest_safe']['n']} XSTest safe prompts.", ""]
    for title, file in plots:
        md += [f"![{title}]({file})", ""]
    for title, (headers, body) in tables:
        md += [f"## {title}", "", markdown_table(headers, body), ""]
    md += ["## Provenance", ""] + provenance + [""]
    with atomic_write(out / "report.md") as handle:
        handle.write("\n".join(md))
    images = "".join(
        f"<figure><img src='data:image/png;base64,{base64.b64encode((out / f).read_bytes()).decode()}' alt='{html.escape(t)}'>"
        f"<figcaption>{html.escape(t)}</figcaption></figure>" for t, f in plots)
    body = "".join(f"<h2>{html.escape(t)}</h2>{_html_table(h, b)}" for t, (h, b) in tables)
    prov = "<ul>" + "".join(f"<li>{html.escape(p[2:])}</li>" for p in provenance) + "</ul>"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>tasksafe report</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
            "margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
            "th{background:#f3f3f3}img{max-width:100%}figcaption{font-size:13px;color:#555}</style></head><body>"
            f"<h1>tasksafe report</h1><p>{html.escape(md[2])}</p>{images}{body}"
            f"<h2>Provenance</h2>{prov}</body></html>")
    with atomic_write(out / "report.html") as handle:
        handle.write(page)
    return out / "report.md"
