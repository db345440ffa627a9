"""Click parameter types for numbers from the command line, checked as the spec checks them:
finite (click's FloatRange lets NaN through), and in range."""

from __future__ import annotations

import math

import click


class FiniteFloat(click.ParamType):
    """A finite float greater than `above` (and below `below`, when given)."""

    name = "number"

    def __init__(self, above: float = 0.0, below: float | None = None):
        self.above, self.below = above, below

    def convert(self, value, param, ctx):
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number", param, ctx)
        if not math.isfinite(number) or number <= self.above or (self.below is not None and number >= self.below):
            limits = f"above {self.above:g}" + (f" and below {self.below:g}" if self.below is not None else "")
            self.fail(f"{value} is not a finite number {limits}", param, ctx)
        return number


POSITIVE = FiniteFloat()
LEARNING_RATE = FiniteFloat(0.0, 1.0)
AT_LEAST_ONE = click.IntRange(min=1)
AT_LEAST_ZERO = click.IntRange(min=0)
