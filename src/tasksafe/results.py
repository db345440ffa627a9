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

from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tasksafe.stats import wilson_interval

SCHEMA_VERSION = 4
"""The version of `EvalResult` the store writes. Version 1 (before typed records) had no
`schema_version` key and no judge options, version 2 no held-out phrasings, version 3 no
`target.precision` (every such evaluation ran in fp32); all are read with those filled in
(empty, or None for the precision)."""

SCHEMA_FINGERPRINT = "90bcc86ae1296d31"
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


class HarmfulSetResult(Record):
    plain: ModeRates = Field(description="the harmful prompt as an ordinary chat turn")
    in_format: ModeRates | None = Field(None, description="renderer-matched: the prompt in the training data's frame "
                                                          "exactly as Paraphrase renders it")
    held_out: dict[str, ModeRates] = Field(default_factory=dict, description="per attacker phrasing the defence never "
                                                                             "saw (evaluate/phrasings.py)")
    sealed: list[str] = Field(default_factory=list, description="the held-out phrasings kept out of all tuning")

    def mode(self, name: str) -> ModeRates | None:
        """`plain`, `in_format` (None when the cell has no frame), `held_out` (every phrasing
        pooled), `held_out_worst` (the phrasing with most non-refusal) or `sealed` (the sealed
        phrasings pooled); None where there is none."""
        if name in ("plain", "in_format"):
            return {"plain": self.plain, "in_format": self.in_format}[name]
        if name == "held_out_worst":
            return max(self.held_out.values(), key=lambda m: (m.non_refusal.value or 0), default=None)
        chosen = [m for p, m in self.held_out.items() if name == "held_out" or p in self.sealed]
        if not chosen:
            return None
        return ModeRates(**{key: RateRecord.combine(getattr(m, key) for m in chosen)
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

    schema_version: Literal[1, 2, 3, 4] = SCHEMA_VERSION
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
