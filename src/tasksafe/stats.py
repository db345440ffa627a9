"""Rates with their sample size and a Wilson 95% interval: every reported rate is one."""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Rate:
    """`k` of `n`, with a Wilson score interval.

    >>> r = Rate(8, 10)
    >>> round(r.value, 2), [round(x, 3) for x in r.interval]
    (0.8, [0.49, 0.943])
    """

    k: int
    n: int

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.k, self.n)

    def to_dict(self) -> dict:
        low, high = self.interval
        return {"value": self.value, "k": self.k, "n": self.n, "ci95": [low, high]}

    def __str__(self) -> str:
        low, high = self.interval
        return f"{100 * self.value:.1f}% [{100 * low:.1f}, {100 * high:.1f}] (n={self.n})"


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def cluster_bootstrap_interval(matrix: list[list[int]], samples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A 95% percentile interval for the mean of a 0/1 `matrix` whose rows are clusters (a
    prompt asked in several phrasings): rows are resampled with replacement, so replies to one
    prompt count as one draw. Deterministic for a given seed. Where every resample gives the
    same mean (no hits, or all), the Wilson interval at n = the number of rows instead.

    >>> cluster_bootstrap_interval([[1, 1], [0, 0]] * 20)
    (0.35, 0.65)
    """
    import numpy as np

    rows = [row for row in matrix if row]
    if not rows:
        return (0.0, 1.0)
    hits = np.array([sum(row) for row in rows], dtype=float)
    sizes = np.array([len(row) for row in rows], dtype=float)
    picks = np.random.default_rng(seed).integers(0, len(rows), size=(samples, len(rows)))
    means = hits[picks].sum(axis=1) / sizes[picks].sum(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    if low == high:
        low, high = wilson_interval(round(float(low) * len(rows)), len(rows))
    return (round(float(low), 6), round(float(high), 6))
