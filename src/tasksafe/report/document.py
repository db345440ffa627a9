"""`tasksafe report`: Markdown and self-contained HTML with tables and plots, from the
results store alone (it never retrains or regenerates)."""

from __future__ import annotations

import base64
import html
import textwrap
from collections import Counter
from pathlib import Path

from tasksafe.data.io import atomic_write
from tasksafe.errors import OutputError
from tasksafe.experiments.store import CellRecord, StoreError
from tasksafe.report.claims import defence_table, reach_table, seed_table, targets_table
from tasksafe.report.plots import make_plots
from tasksafe.report.tables import (
    SUMMARY_LEGEND,
    attack_table,
    markdown_table,
    mitigation_table,
    outcomes_table,
    rates_table,
    summary_table,
)
from tasksafe.text import text_table


def provenance(rows: list[CellRecord]) -> list[str]:
    """Where the figures come from: specs, commits, versions, judges, fine-tuning settings."""
    judges = {}
    for r in rows:
        judges[r.metrics.judge.name] = r.metrics.judge.validation
    lines = [
        f"- spec(s): {', '.join(sorted({r.spec for r in rows}))}; {len(rows)} finished cells",
        f"- git commit(s): {', '.join(sorted({str(r.git_commit) for r in rows}))}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in rows[-1].versions.items() if k != 'device')}",
        f"- devices: {_devices(rows)}",
    ]
    for name, v in judges.items():
        lines.append(f"- judge `{name}`: " + (f"accuracy {v.accuracy:.3f}, kappa {v.kappa:.3f} against XSTest human "
                                               "labels (held-out models)" if v else
                                               "not validated (run `tasksafe judge validate`)") + _on_organism(name))
    train = next((r.config.train for r in reversed(rows) if r.config.train), None)
    if train:
        lines.append(f"- fine-tuning: {', '.join(f'{k} {v}' for k, v in train.model_dump().items())}")
    return lines


def _devices(rows: list[CellRecord]) -> str:
    """Where the cells computed, with counts (cells before devices were recorded ran on a CPU)."""
    counts = Counter(r.versions.get("device", "cpu (not recorded)") for r in rows)
    return ", ".join(f"{name}: {n} cell{'s' * (n != 1)}" for name, n in sorted(counts.items()))


def _on_organism(judge: str) -> str:
    """The judge's agreement with people on the organism's own replies (held-out split), as
    `tasksafe judge agree` last measured it."""
    from tasksafe.judges.validate import cached_agreement

    splits = (cached_agreement(judge) or {}).get("splits") or {}
    parts = [f"on {s['n']} hand-labelled replies of the organism ({name}): refusal vs rest accuracy "
             f"{s['refusal_accuracy']:.3f}, kappa {s['refusal_kappa']:.3f}; called harmful {s['harmful_by_judge']} "
             f"where people found {s['harmful_by_people']}"
             for split, name in (("heldout", "held out"), ("blind", "blind: labelled after the judges' last change"))
             if (s := splits.get(split))]
    if not parts:
        return "; on the organism's hand-labelled replies: not measured (run `tasksafe judge agree`)"
    return "; " + "; ".join(parts)


def _sample_sizes(rows: list[CellRecord]) -> str:
    last = rows[-1].metrics
    harmful_n = ", ".join(f"{name} {entry.plain.asr.n}" for name, entry in last.harmful.items())
    task_n = last.task.generation_accuracy.n if last.task else "no"
    return (f"Every rate in % with its Wilson 95% interval. Sample sizes per cell: harmful prompts {harmful_n}; "
            f"{task_n} task items; {last.overrefusal.xstest_safe.n} XSTest safe prompts.")


def _html_table(headers: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


STYLE = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}table{border-collapse:collapse;"
         "margin:1em 0;font-size:13px}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
         "th{background:#f3f3f3}img{max-width:100%}figcaption{font-size:13px;color:#555}")


def failed_table(results_dir: str | Path) -> tuple[list[str], list[list[str]]]:
    """The cells of a store whose last run failed and that have not finished since (an
    exported results file keeps finished cells only, so it has none)."""
    from tasksafe.experiments.store import ResultsStore, store_path

    if not store_path(results_dir).is_file():
        return [], []
    store = ResultsStore(results_dir, read_only=True)
    failures = store.failures()
    store.close()
    headers = ["cell", "kind", "task", "strategy", "mitigation", "budget", "seed", "starts", "error", "log"]
    return headers, [[f.id, f.config.kind, f.config.task, f.config.strategy, f.config.mitigation_label(),
                      f"{f.config.budget:g}", str(f.config.seed), str(f.attempts), f.error, f.log or "-"]
                     for f in failures]


def variants_table(rows: list[CellRecord]) -> tuple[list[str], list[list[str]]]:
    """The key to the short labels: each mitigation variant's tag with its options in full."""
    seen = {r.config.mitigation_label(): r.config.options_text() for r in rows if r.config.options}
    return ["mitigation", "options"], [[label, options] for label, options in sorted(seen.items())]


def build_report(results_dir: str | Path, out_dir: str | Path) -> Path:
    """Write report.md, report.html and the PNG plots from a results folder or an exported
    results file (`tasksafe results export`); returns the Markdown path."""
    from tasksafe.experiments.transfer import read_rows

    rows = read_rows(results_dir)
    if not rows:
        raise StoreError(f"{results_dir}: no finished cells yet")
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(str(out), f"cannot be created ({err.strerror})") from None
    plots = make_plots(rows, out)
    tables = [("The attack", attack_table(rows)), ("Mitigations", mitigation_table(rows)),
              ("Variants: what each mitigation's tag stands for", variants_table(rows))]
    tables = [(title, table) for title, table in tables if table[1]]
    tables += [(title, table) for title, table in (
        ("The defence as the harmful fine-tuning literature reports it (HS: judged harmful, FA: fine-tune accuracy)",
         defence_table(rows)),
        ("Fewest safety examples back to the organism's own rate", reach_table(rows)),
        ("Held-out pools in three outcomes: refusal, compliance, off-request", outcomes_table(rows)),
        ("Seed to seed", seed_table(rows)),
        ("Against the defence targets (references: the benign and the unprotected tune of the task)",
         targets_table(rows))) if table[1]]
    tables.append(("Every rate, per mode and held-out phrasing", rates_table(rows)))
    failed = failed_table(results_dir)
    if failed[1]:
        tables.append(("Failed cells", failed))
    sources, intro = provenance(rows), _sample_sizes(rows)
    md = ["# tasksafe report", "", intro, ""]
    for title, file in plots:
        md += [f"![{title}]({file})", ""]
    for title, (headers, body) in tables:
        md += [f"## {title}", "", markdown_table(headers, body), ""]
    md += ["## Provenance", ""] + sources + [""]
    with atomic_write(out / "report.md") as handle:
        handle.write("\n".join(md))
    with atomic_write(out / "summary.txt") as handle:  # what `tasksafe report` prints
        handle.write(text_table(*summary_table(rows)) + "\n\n" + "\n".join(textwrap.wrap(SUMMARY_LEGEND, 96)) + "\n")
    images = "".join(
        f"<figure><img src='data:image/png;base64,{base64.b64encode((out / f).read_bytes()).decode()}' alt='{html.escape(t)}'>"
        f"<figcaption>{html.escape(t)}</figcaption></figure>" for t, f in plots)
    body = "".join(f"<h2>{html.escape(t)}</h2>{_html_table(h, b)}" for t, (h, b) in tables)
    prov = "<ul>" + "".join(f"<li>{html.escape(p[2:])}</li>" for p in sources) + "</ul>"
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>tasksafe report</title><style>{STYLE}</style>"
            f"</head><body><h1>tasksafe report</h1><p>{html.escape(intro)}</p>{images}{body}"
            f"<h2>Provenance</h2>{prov}</body></html>")
    with atomic_write(out / "report.html") as handle:
        handle.write(page)
    return out / "report.md"
