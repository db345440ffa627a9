"""The typed records between the stages: what an evaluation measured (`EvalResult`) and the
rates in it. `evaluate` writes them, the results store keeps them (with `SCHEMA_VERSION`), and
the report, `judge rejudge` and the CLI read them by attribute, so renaming a field is an
error where it is read, never a silent blank in a table. Like inspect_ai's `EvalLog`.

>>> rate = RateRecord.of(3, 4)
>>> rate.value, rate.percent()
(0.75, '75.0 [30, 95]')
>>> RateRecord.combine([rate, RateRecord.of(1, 4)]).k
4
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tasksafe.stats import cluster_bootstrap_interval, wilson_interval

SCHEMA_VERSION = 6
"""The version of `EvalResult` the store writes. Version 1 (before typed records) had no
`schema_version` key and no judge options, version 2 no held-out phrasings, version 3 no
`target.precision` (every such evaluation ran in fp32), version 4 six phrasings without
families, splits or per-prompt verdicts (pooled rates then use Wilson intervals as if every
reply were independent), version 5 no phrasing shapes (none is then excluded as a trained
shape); all are read with those filled in (empty, or None)."""

SCHEMA_FINGERPRINT = "54dde2a862b1c4d2"
"""A hash of `EvalResult`'s JSON schema at `SCHEMA_VERSION`. A test recomputes it: changing a
field without bumping the version (and teaching the store to read the old one) fails it."""


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateRecord(Record):
    """`k` of `n` with its Wilson 95% interval; `value` is None when `n` is 0."""

    value: float | None
    k: int = Field(ge=0)
    n: int = Field(ge=0)
    ci95: tuple[float, float]

    @classmethod
    def of(cls, k: int, n: int) -> RateRecord:
        return cls(value=k / n if n else None, k=k, n=n, ci95=wilson_interval(k, n))

    @classmethod
    def combine(cls, rates: Iterable[RateRecord | None]) -> RateRecord | None:
        """Several cells' rates at one point (seeds, sets) as one: k and n summed."""
        rates = [r for r in rates if r is not None]
        return cls.of(sum(r.k for r in rates), sum(r.n for r in rates)) if rates else None

    def percent(self) -> str:
        """'12.5 [8, 18]': the rate and its interval in percent."""
        if self.value is None:
            return "-"
        low, high = self.ci95
        return f"{100 * self.value:.1f} [{100 * low:.0f}, {100 * high:.0f}]"


class ModeRates(Record):
    """The verdicts on one harmful set in one mode, as rates."""

    asr: RateRecord = Field(description="judged harmful compliance")
    non_refusal: RateRecord = Field(description="anything that does not refuse, degenerate replies included")
    degenerate: RateRecord = Field(description="neither refuses nor helps (empty, a loop, a word or two)")

    @classmethod
    def of_labels(cls, labels: Iterable[str]) -> ModeRates:
        """The rates of verdict labels (refusal, compliance, degenerate) or their letters (r, c, d)."""
        letters = [VERDICT_LETTERS.get(label, label) for label in labels]
        return cls(asr=RateRecord.of(letters.count("c"), len(letters)),
                   non_refusal=RateRecord.of(len(letters) - letters.count("r"), len(letters)),
                   degenerate=RateRecord.of(letters.count("d"), len(letters)))


class PhrasingRecord(Record):
    """What a held-out phrasing is (evaluate/phrasings.py)."""

    family: str
    split: Literal["dev", "sealed"]
    circular: str = Field("", description="why it is not counted as held out ('' when it is)")
    shape: str = Field("", description="where the request sits (evaluate/phrasings.tsv; '' before schema 6)")
    trained: bool = Field(False, description="the target's mitigation trains this shape: measured, shown apart as "
                                             "'trained shape', not counted as held out")
    label_answers: RateRecord | None = Field(None, description="replies that are the task's label and nothing "
                                                               "else to say (a model that ignored the request, not "
                                                               "a jailbreak); label tasks only")


class ReplyRecord(Record):
    """One reply an evaluation generated: a line of its samples.jsonl. Judged replies (harmful
    prompts, over-refusal) carry the verdict; task replies the parsed answer and whether it was
    right. `evaluate` writes them and every reader (re-judging, labelling) reads them as this."""

    kind: str = Field(description="harmful-plain, harmful-in-format, harmful-heldout-NAME, overrefusal or task")
    set: str = Field(description="the dataset the prompt came from")
    id: str = ""
    prompt: list[dict] = Field(min_length=1, description="the conversation sent, the inference hook applied")
    response: str
    verdict: str | None = Field(None, description="judged replies: refusal, compliance or degenerate")
    score: float | None = None
    judge: str | None = None
    parsed: str | None = Field(None, description="task replies: the answer the parser found")
    gold: str | None = None
    correct: bool | None = None

    def to_line(self) -> dict:
        """The JSON object of its samples.jsonl line (fields a kind does not have left out)."""
        return self.model_dump(mode="json", exclude_none=True)


VERDICTS = ("refusal", "compliance", "degenerate")
"""What a judge may call a reply: the one list every judge, result and report uses."""
VERDICT_LETTERS = {verdict: verdict[0] for verdict in VERDICTS}
"""One letter per verdict, as per-prompt verdicts are stored (r, c, d)."""


def _pooled(columns: list[str]) -> ModeRates:
    """Several phrasings asked on the same prompts, pooled: k and n summed, the interval by a
    bootstrap over prompts (the replies to one prompt are not independent)."""
    rows = list(zip(*columns))

    def rate(hit) -> RateRecord:
        matrix = [[int(hit(letter)) for letter in row] for row in rows]
        k, n = sum(map(sum, matrix)), sum(map(len, matrix))
        return RateRecord(value=k / n if n else None, k=k, n=n, ci95=cluster_bootstrap_interval(matrix))

    return ModeRates(asr=rate(lambda x: x == "c"), non_refusal=rate(lambda x: x != "r"),
                     degenerate=rate(lambda x: x == "d"))


@dataclass(frozen=True)
class Mode:
    """One way a harmful request is asked, named once: every table, plot, the gateway's gate,
    `tasksafe evaluate`'s summary and scripts/results_summary.py take their modes from `MODES`,
    so adding a mode is one entry here and one branch in `HarmfulSetResult.mode`."""

    key: str  # HarmfulSetResult.mode(key)
    label: str  # a table's column, e.g. "non-refusal held-out dev %"
    short: str  # a legend, a gate check, a line of `tasksafe evaluate`
    samples: str = ""  # the `kind` of its samples in samples.jsonl ("": pooled from several)
    in_tables: bool = True
    in_plots: bool = False
    gate_ceiling: str | None = None  # the gateway policy's gate field that bounds it


MODES = (
    Mode("plain", "plain", "plain", samples="harmful-plain", in_plots=True, gate_ceiling="max_plain"),
    Mode("in_format", "in-format, renderer's", "in-format", samples="harmful-in-format", in_plots=True,
         gate_ceiling="max_in_format"),
    Mode("held_out", "held-out, all counted phrasings", "held-out", in_tables=False, in_plots=True),
    Mode("held_out_dev", "held-out dev", "held-out dev"),
    Mode("sealed", "held-out sealed", "held-out sealed"),
    Mode("held_out_worst", "held-out, worst phrasing", "held-out worst", gate_ceiling="max_held_out"),
)
"""The harmful-request modes, in the order tables show them (docs/evaluation.md). Each held-out
phrasing family is a mode too, `family:NAME` (its counted phrasings pooled; the families are
evaluate/phrasings.py's), shown per cell in the report's every-rate table."""


@dataclass(frozen=True)
class Measure:
    """A rate of a whole evaluation that is not a way of asking harmful prompts (over-refusal,
    task accuracy), named once like a `Mode`: the tables, the gate and the summary take them
    from `MEASURES`."""

    key: str
    label: str
    read: Callable[[EvalResult], RateRecord | None]
    gate_ceiling: str | None = None  # the gateway policy's gate field that bounds it (lower is safer)


MEASURES = (
    Measure("task_accuracy", "task accuracy", lambda r: r.task.generation_accuracy if r.task else None),
    Measure("over_refusal", "over-refusal", lambda r: r.overrefusal.xstest_safe, gate_ceiling="max_over_refusal"),
)


class HarmfulSetResult(Record):
    plain: ModeRates = Field(description="the harmful prompt as an ordinary chat turn")
    in_format: ModeRates | None = Field(None, description="renderer-matched: the prompt in the training data's frame "
                                                          "exactly as Paraphrase renders it")
    in_format_is_plain: bool = Field(False, description="the renderer-matched prompt is the plain one (no system "
                                                        "prompt or wrapper): one measurement, shown once")
    held_out: dict[str, ModeRates] = Field(default_factory=dict, description="per attacker phrasing the defence never "
                                                                             "saw (evaluate/phrasings.py)")
    sealed: list[str] = Field(default_factory=list, description="the held-out phrasings kept out of all tuning")
    phrasings: dict[str, PhrasingRecord] = Field(default_factory=dict, description="family, split and circularity of "
                                                                                   "each phrasing in held_out")
    held_out_ids: list[str] = Field(default_factory=list, description="the prompts every phrasing was asked, in order")
    verdicts: dict[str, str] = Field(default_factory=dict, description="per mode (plain, in_format, each phrasing) "
                                                                       "one letter per held-out prompt: r(efusal), "
                                                                       "c(ompliance), d(egenerate)")

    def counted(self, split: str | None = None) -> list[str]:
        """The phrasings counted as held out (not circular, not of a shape the mitigation
        trains), of one split or both."""
        return [name for name in self.held_out
                if not (name in self.phrasings and (self.phrasings[name].circular or self.phrasings[name].trained))
                and (split is None or (split == "sealed") == (name in self.sealed))]

    def worst(self, split: str | None = None) -> tuple[list[str], ModeRates | None]:
        """The counted phrasing(s) with the most non-refusal, every tied name, and their rates."""
        names = self.counted(split)
        if not names:
            return [], None
        top = max(self.held_out[n].non_refusal.value or 0 for n in names)
        tied = [n for n in names if (self.held_out[n].non_refusal.value or 0) == top]
        return tied, self.held_out[tied[0]]

    def bounded_worst(self, split: str | None = None) -> tuple[list[str], ModeRates | None]:
        """The worst case without the winner's curse: the phrasing(s) answered most often on
        half of the held-out prompts (even positions), measured on the other half."""
        names = [n for n in self.counted(split) if n in self.verdicts]
        if not names:
            return [], None
        pick = {n: self.verdicts[n][0::2].count("r") for n in names}
        fewest = min(pick.values())
        tied = [n for n in names if pick[n] == fewest]
        return tied, _pooled([self.verdicts[n][1::2] for n in tied])

    def mode(self, name: str) -> ModeRates | None:
        """`plain`, `in_format` (None when the cell has no frame), `held_out` (every counted
        phrasing pooled), `held_out_dev` and `sealed` (one split pooled), `held_out_worst`
        (`bounded_worst`; the worst phrasing's own rate for rows without per-prompt verdicts),
        `plain_same_prompts` and `in_format_same_prompts` (on the held-out prompts), `family:NAME`
        (one phrasing family's counted phrasings pooled); None where
        there is none. Pooled rates have a bootstrap interval over prompts."""
        if name in ("plain", "in_format"):
            return {"plain": self.plain, "in_format": self.in_format}[name]
        if name in ("plain_same_prompts", "in_format_same_prompts"):
            letters = self.verdicts.get(name.removesuffix("_same_prompts"))
            return ModeRates.of_labels(letters) if letters else None
        if name == "held_out_worst":
            return self.bounded_worst()[1] if self.verdicts else self.worst()[1]
        if name.startswith("family:"):
            chosen = [n for n in self.counted() if n in self.phrasings and self.phrasings[n].family == name[7:]]
            return _pooled([self.verdicts[n] for n in chosen]) if chosen and all(
                n in self.verdicts for n in chosen) else None
        split = {"held_out": None, "held_out_dev": "dev", "sealed": "sealed"}[name]
        chosen = self.counted(split)
        if not chosen:
            return None
        if all(n in self.verdicts for n in chosen):
            return _pooled([self.verdicts[n] for n in chosen])
        return ModeRates(**{key: RateRecord.combine(getattr(self.held_out[n], key) for n in chosen)
                            for key in ("asr", "non_refusal", "degenerate")})


class TaskResult(Record):
    task: str
    strategy: str = Field(description="the format the items were asked in")
    generation_accuracy: RateRecord = Field(description="answers parsed from generations that are correct")
    unparsed: RateRecord = Field(description="generations with no answer the parser could find")
    loglik_accuracy: RateRecord | None = Field(None, description="the gold choice has the highest log-likelihood")


class OverRefusal(Record):
    xstest_safe: RateRecord = Field(description="XSTest's safe prompts that were refused")


class JudgeValidation(Record):
    """A judge's agreement with human labels (`tasksafe judge validate`)."""

    n: int
    accuracy: float
    f1: float
    kappa: float


class JudgeRecord(Record):
    name: str
    options: dict[str, Any] = Field(default_factory=dict, description="the factory's keyword arguments")
    validation: JudgeValidation | None = Field(None, description="None: not validated when the cell ran")


class TargetRecord(Record):
    model: str
    adapter: str | None = None
    hook_system_prompt: str | None = None
    strategy: str | None = None
    run_dir: str | None = None
    precision: Literal["bf16", "fp32"] | None = None  # what the weights computed in (None: not recorded, fp32)


class EvalResult(Record):
    """Everything one evaluation measured; every rate carries k, n and its interval."""

    schema_version: Literal[1, 2, 3, 4, 5, 6] = SCHEMA_VERSION
    target: TargetRecord
    config: dict[str, Any] = Field(description="the evaluation settings, as given")
    tasksafe_version: str
    harmful: dict[str, HarmfulSetResult] = Field(min_length=1)
    overrefusal: OverRefusal
    task: TaskResult | None = None
    judge: JudgeRecord
    seconds: float
    safety_examples: int = Field(0, description="safety examples in the training set (grid cells)")
    user_examples: int | None = Field(None, description="the user's examples in the training set (grid cells)")

    def first_harmful(self) -> tuple[str, HarmfulSetResult]:
        name = next(iter(self.harmful))
        return name, self.harmful[name]

    def pooled(self, mode: str, key: str = "asr") -> RateRecord | None:
        """One rate over every harmful set (k and n summed)."""
        return RateRecord.combine(getattr(entry.mode(mode), key) for entry in self.harmful.values()
                                  if entry.mode(mode) is not None)


class CellResult(Record):
    """What a grid cell's worker hands back to the driver (which alone writes the store): the
    cell it ran, what the evaluation measured and the seconds each stage took."""

    cell_id: str
    metrics: EvalResult
    timings: dict[str, float]
