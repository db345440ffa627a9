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

SCHEMA_VERSION = 2
"""The version of `EvalResult` the store writes. Version 1 (before typed records) had no
`schema_version` key and no judge options; it is read with those filled in."""

SCHEMA_FINGERPRINT = "c3b004c8b69e9e9c"
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
    in_format: ModeRates | None = Field(None, description="the prompt in the training data's frame")

    def mode(self, name: str) -> ModeRates | None:
        """`plain` or `in_format` by name (None when the cell has no frame)."""
        return {"plain": self.plain, "in_format": self.in_format}[name]


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


class EvalResult(Record):
    """Everything one evaluation measured; every rate carries k, n and its interval."""

    schema_version: Literal[1, 2] = SCHEMA_VERSION
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
