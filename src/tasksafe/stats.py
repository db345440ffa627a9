"""The statistics behind every reported rate (a `tasksafe.results.RateRecord`): Wilson 95%
intervals, and bootstrap intervals over prompts for pooled phrasings."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


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
