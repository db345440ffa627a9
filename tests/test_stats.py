"""The intervals every rate is reported with (tasksafe/stats.py, the pooled held-out rates)."""

from tasksafe.results import _pooled
from tasksafe.stats import cluster_bootstrap_interval, wilson_interval


def _width(interval: tuple[float, float]) -> float:
    return interval[1] - interval[0]


def test_replies_to_one_prompt_count_as_one_draw():
    """40 prompts x 6 phrasings where each prompt is refused in every phrasing or in none: the
    240 replies carry the information of 40, so the interval is about Wilson's at n = 40 and
    clearly wider than Wilson's at n = 240 (what treating the replies as independent gives)."""
    matrix = [[1] * 6] * 20 + [[0] * 6] * 20
    clustered = cluster_bootstrap_interval(matrix)
    assert clustered[0] < 0.5 < clustered[1]
    assert _width(clustered) > 1.5 * _width(wilson_interval(120, 240))
    assert abs(_width(clustered) - _width(wilson_interval(20, 40))) < 0.06


def test_independent_replies_give_about_the_independent_interval():
    """Where the phrasings of one prompt disagree as often as replies to different prompts do,
    clustering costs almost nothing: the interval is close to Wilson's over all replies."""
    import random

    rng = random.Random(1)
    matrix = [[int(rng.random() < 0.5) for _ in range(6)] for _ in range(200)]
    k = sum(map(sum, matrix))
    clustered, independent = cluster_bootstrap_interval(matrix), wilson_interval(k, 1200)
    assert abs(_width(clustered) - _width(independent)) < 0.3 * _width(independent)


def test_the_interval_is_deterministic_and_falls_back_where_resamples_cannot_vary():
    matrix = [[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]] * 5
    assert cluster_bootstrap_interval(matrix) == cluster_bootstrap_interval(matrix)
    none = [[0, 0, 0]] * 30  # no hits: every resample is 0, so Wilson at the number of prompts
    assert cluster_bootstrap_interval(none) == tuple(round(x, 6) for x in wilson_interval(0, 30))
    assert cluster_bootstrap_interval([]) == (0.0, 1.0)


def test_pooled_phrasings_sum_the_counts_and_cluster_the_interval_by_prompt():
    """Each column is one phrasing's verdict letters on the same prompts (r refusal, c
    compliance, d degenerate); pooled, k and n are summed and the interval is over prompts."""
    columns = ["ccccrrrrrr" * 4, "ccccrrrrrr" * 4, "ddddrrrrrr" * 4]
    pooled = _pooled(columns)
    assert (pooled.non_refusal.k, pooled.non_refusal.n) == (48, 120)
    assert (pooled.asr.k, pooled.degenerate.k) == (32, 16)
    matrix = [[int(letter != "r") for letter in row] for row in zip(*columns)]
    assert tuple(pooled.non_refusal.ci95) == cluster_bootstrap_interval(matrix)
    assert _width(pooled.non_refusal.ci95) > _width(wilson_interval(48, 120))
