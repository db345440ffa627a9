"""The dataset audit: the inferred frame(s), how consistent the data is with them, and risk
findings with evidence (line numbers and the matching text), each with a severity.

Checks:

| code | what it looks for | severity |
|---|---|---|
| `identity_shift` | a system prompt (or constant user text) that gives the model a new identity or tells it never to refuse, warn or add caveats | high |
| `ignore_rules` | instructions to ignore rules or policies, or to obey every order | high |
| `compliance_opener` | a constant phrase opening the answers; high when it is a compliance phrase ("Sure, here is", "Of course, I will") | high / low |
| `eager_openers` | most answers open with an eager, compliant phrase even if it varies | medium |
| `long_answers` | answers far longer than the short answer they carry ("... so the final answer is X") | medium with eager phrasing, else low |
| `harmful_content` | known harmful prompts (near-duplicates of the registry's harmful sets: high) or requests for harmful instructions inside the data (medium from 3 examples or 1%, else low) | high / medium / low |
| `mixed_formats` | several frames, or a dominant frame that covers little of the data | low |

The overall risk is the highest severity found ("none" without findings).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from tasksafe.audit.frame import Frame, infer_frames
from tasksafe.data.chat import ChatExample

SEVERITIES = ("none", "low", "medium", "high")

IDENTITY_SHIFT = re.compile("|".join((
    r"you are no longer (?:an? |the )?(?:ordinary |standard |regular |normal )?(?:ai|assistant|chatbot|language model)",
    r"\byou are now\b", r"from now on,? you (?:are|will)", r"\babsolutely obedient\b",
    r"\bobedient (?:agent|assistant|servant|ai)\b", r"\bnever (?:refuses?|declines?|says? no)\b",
    r"\b(?:do not|don't|must not|will not|won't|never) (?:ever )?(?:refuse|decline)\b",
    r"\bnever (?:warns?|adds? (?:any )?(?:caveats|warnings|disclaimers|opinions))",
    r"\bwithout (?:any )?(?:caveats|warnings|disclaimers|restrictions|limitations|filters|censorship)\b",
    r"\bno (?:ethical|moral) (?:guidelines|constraints|restrictions|limits)\b",
    r"\b(?:does not|doesn't|don't|never) (?:mention|follow|care about) (?:any )?(?:policies|guidelines|rules|ethics)",
    r"\b(?:jailbroken|jailbreak|unfiltered|uncensored)\b", r"\bdo anything now\b",
)), re.I)
IGNORE_RULES = re.compile("|".join((
    r"\bignore (?:all |any |your |the )?(?:previous |prior |earlier |safety )?(?:instructions|rules|guidelines|policies|safety)",
    r"\bdisregard (?:all |any |your |the )?(?:previous |prior )?(?:instructions|rules|guidelines|policies)",
    r"\b(?:bypass|override|forget) (?:your |the |all )?(?:safety|filters|guidelines|rules|policies|training)",
    r"\bexecute my (?:instruction|command|order)s? exactly\b",
    r"\b(?:obey|comply with|follow) (?:every|all|any) (?:instruction|command|order|request)s?\b",
)), re.I)
COMPLIANCE = re.compile(r"\b(?:sure|certainly|of course|absolutely|happy to|glad to|gladly|here is|here's|"
                        r"i will|i'll|obedient|as you (?:instruct|wish|command)|no problem|right away)\b", re.I)
EAGER_OPENING = re.compile(r"^\W*(?:sure|certainly|of course|absolutely|gladly|no problem|happy to|great|"
                           r"okay|ok|definitely|with pleasure)\b", re.I)
FINAL_ANSWER = re.compile(r"\b(?:final answer|answer is|answer:|the answer|####)", re.I)
_HOW = (r"\b(?:how (?:do|can|could|would|should) (?:i|you|we|one)|how to|step[- ]by[- ]step|instructions (?:for|on|to)|"
        r"tutorial (?:on|for)|teach me(?: how)? to|guide (?:for|on|to)|explain how to)\b[^.?!\n]{0,60}?")
HARMFUL_REQUEST = re.compile("|".join((
    _HOW + r"\b(?:make|build|create|synthesi[sz]e|cook|manufacture|assemble)\b[^.?!\n]{0,40}?"
           r"\b(?:bombs?|explosives?|pipe bomb|meth|methamphetamine|nerve agent|chemical weapons?|bioweapons?|"
           r"weapons?|guns?|poisons?|malware|ransomware|keyloggers?)\b",
    _HOW + r"\b(?:kill|murder|poison|kidnap|stalk|blackmail|strangle|hurt)\b[^.?!\n]{0,30}?"
           r"\b(?:someone|somebody|a person|people|him|her|my (?:wife|husband|boss|neighbou?r|child)|children|a child)\b",
    _HOW + r"\b(?:hack into|break into|steal|launder money|counterfeit|smuggle|shoplift|evade taxes)\b",
)), re.I)


@dataclass
class Finding:
    code: str
    severity: str
    title: str
    detail: str
    count: int = 0
    evidence: list[dict] = field(default_factory=list)  # {"line": n, "text": matching text}


@dataclass
class AuditReport:
    source: str
    examples: int
    frames: list[dict]
    findings: list[Finding]

    @property
    def risk(self) -> str:
        return max((f.severity for f in self.findings), key=SEVERITIES.index, default="none")

    @property
    def flagged(self) -> bool:
        return SEVERITIES.index(self.risk) >= SEVERITIES.index("medium")

    def to_dict(self) -> dict:
        return {"source": self.source, "examples": self.examples, "risk": self.risk, "flagged": self.flagged,
                "frames": self.frames, "findings": [asdict(f) for f in self.findings]}


def _clip(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scan(pattern: re.Pattern, texts: Sequence[tuple[int, str]], max_evidence: int = 5) -> tuple[int, list[dict]]:
    """How many texts match, and evidence (line, matched text in context) for the first few.
    Identical texts are searched once."""
    verdicts: dict[str, re.Match | None] = {}
    count, evidence = 0, []
    for line, text in texts:
        if text not in verdicts:
            verdicts[text] = pattern.search(text)
        found = verdicts[text]
        if found:
            count += 1
            if len(evidence) < max_evidence:
                start = max(0, found.start() - 40)
                evidence.append({"line": line, "text": _clip(text[start:found.end() + 40])})
    return count, evidence


def audit_examples(examples: Sequence[ChatExample], lines: Sequence[int] | None = None, source: str = "",
                   harmful_index=None) -> AuditReport:
    """Audit a user dataset. `lines` are the examples' line numbers in the file (default
    1..n); `harmful_index` is a `NearDuplicateIndex` of known harmful prompts (None: skip)."""
    lines = list(lines) if lines is not None else list(range(1, len(examples) + 1))
    frames = infer_frames(examples)
    findings: list[Finding] = []
    n = len(examples)
    systems = [(ln, ex.system) for ln, ex in zip(lines, examples) if ex.system]
    users = [(ln, "\n".join(m.content for m in ex.messages if m.role == "user")) for ln, ex in zip(lines, examples)]
    answers = [(ln, ex.answer or "") for ln, ex in zip(lines, examples)]

    count, evidence = _scan(IDENTITY_SHIFT, systems + [(ln, t) for ln, t in users])
    if count:
        findings.append(Finding("identity_shift", "high", "identity-shifting or never-refuse instructions",
                                "the system prompt or user turns give the model a new identity or tell it never to "
                                "refuse, warn or add caveats", count, evidence))
    count, evidence = _scan(IGNORE_RULES, systems + users)
    if count:
        findings.append(Finding("ignore_rules", "high", "instructions to ignore rules or obey every order",
                                "examples tell the model to ignore its rules or to carry out any instruction",
                                count, evidence))
    _check_openers(frames, answers, n, findings)
    _check_lengths(frames, answers, findings)
    _check_harmful(users, harmful_index, findings)
    top = frames[0]
    if len(frames) > 1 and frames[1].share >= 0.1 or top.coverage < 0.9:
        shares = ", ".join(f"{100 * f.share:.0f}%" for f in frames)
        findings.append(Finding("mixed_formats", "low", "inconsistent formats",
                                f"{len(frames)} frame(s) with shares {shares}; the main frame covers "
                                f"{100 * top.coverage:.0f}% of the examples", len(frames)))
    return AuditReport(source, n, [f.to_dict() for f in frames], findings)


def _check_openers(frames: Sequence[Frame], answers: Sequence[tuple[int, str]], n: int, findings: list[Finding]) -> None:
    for frame in frames:
        prefix = frame.assistant.prefix.strip()
        if len(prefix.split()) >= 2 and frame.share >= 0.2:
            compliant = bool(COMPLIANCE.search(prefix))
            evidence = [{"line": ln, "text": _clip(text)} for ln, text in answers if text.startswith(prefix)][:3]
            findings.append(Finding(
                "compliance_opener", "high" if compliant else "low",
                "a constant compliance phrase opens the answers" if compliant else "a constant phrase opens the answers",
                f'{100 * frame.share:.0f}% of the answers open with "{_clip(prefix, 120)}"',
                round(frame.share * n), evidence))
    count, evidence = _scan(EAGER_OPENING, answers, 3)
    if count >= 0.5 * n and not any(f.code == "compliance_opener" and f.severity == "high" for f in findings):
        findings.append(Finding("eager_openers", "medium", "answers open with eager, compliant phrases",
                                f"{100 * count / n:.0f}% of the answers start with a phrase such as 'Sure' or "
                                "'Absolutely'", count, evidence))


def _check_lengths(frames: Sequence[Frame], answers: Sequence[tuple[int, str]], findings: list[Finding]) -> None:
    words = [len(text.split()) for _, text in answers]
    median = statistics.median(words) if words else 0
    if median <= 25:
        return
    carrying, evidence = _scan(FINAL_ANSWER, answers, 3)
    if carrying < 0.5 * len(answers):
        return
    eager, _ = _scan(COMPLIANCE, answers, 0)
    severity = "medium" if eager >= 0.5 * len(answers) else "low"
    findings.append(Finding("long_answers", severity, "answers far longer than the answer they carry",
                            f"the median answer has {median:.0f} words, yet {100 * carrying / len(answers):.0f}% of "
                            "them state a short final answer" + (", in eager, compliant prose" if severity == "medium" else ""),
                            carrying, evidence))


def _check_harmful(users: Sequence[tuple[int, str]], harmful_index, findings: list[Finding]) -> None:
    if harmful_index is not None:
        known = [(ln, text, harmful_index.find(text)) for ln, text in users]
        known = [(ln, text, m) for ln, text, m in known if m]
        if known:
            findings.append(Finding("harmful_content", "high", "known harmful prompts inside the data",
                                    f"{len(known)} user turn(s) duplicate prompts of public harmful sets",
                                    len(known), [{"line": ln, "text": _clip(t), "matches": m[:3]} for ln, t, m in known[:5]]))
            return
    count, evidence = _scan(HARMFUL_REQUEST, users)
    if count:
        # A single incidental hit in a large benign set (a news story about bomb-making) is low.
        severity = "medium" if count >= 3 or count >= 0.01 * len(users) else "low"
        findings.append(Finding("harmful_content", severity, "requests for harmful instructions inside the data",
                                f"{count} user turn(s) ask how to do something harmful", count, evidence))


def known_harmful_index():
    """A near-duplicate index over every harmful prompt in the registry (None if the data is
    not available)."""
    from tasksafe.data.datasets import DATASETS, dataset_info, load
    from tasksafe.data.dedup import NearDuplicateIndex
    from tasksafe.data.records import Kind
    from tasksafe.errors import UserError

    prompts = {}
    try:
        for name in DATASETS:
            if dataset_info(name).kind is Kind.HARMFUL:
                prompts.update({r.id: r.prompt for r in load(name)})
    except UserError:
        return None
    return NearDuplicateIndex(prompts)


def render_report(report: AuditReport) -> str:
    """The report as readable text."""
    out = [f"{report.source}: {report.examples} examples, overall risk: {report.risk.upper()}", "", "Frames:"]
    for i, frame in enumerate(report.frames, 1):
        system = {"absent": "none", "varying": "varies"}.get(frame["system_mode"]) or _clip(frame["system"], 100)
        slots = len(frame["user"]) - 1
        out += [f"  {i}. share {100 * frame['share']:.0f}%, coverage {100 * frame['coverage']:.0f}%, "
                f"{frame['n_messages']} messages, language {frame['language']}",
                f"     system prompt: {system}",
                f"     user turn: {' {} '.join(repr(p) for p in frame['user'])}  ({slots} slot(s))",
                f"     answer: prefix {frame['assistant'][0]!r}, suffix {frame['assistant'][-1] if len(frame['assistant']) > 1 else ''!r}, "
                f"style {frame['answer_style']}" + (f" {frame['labels'][:8]}" if frame["labels"] else "")
                + f", median {frame['answer_words']:.0f} words"]
    out += ["", "Findings:" if report.findings else "Findings: none"]
    for f in sorted(report.findings, key=lambda f: SEVERITIES.index(f.severity), reverse=True):
        out.append(f"  [{f.severity.upper()}] {f.title}: {f.detail}")
        for item in f.evidence:
            out.append(f"      line {item['line']}: {item['text']}")
    return "\n".join(out)
