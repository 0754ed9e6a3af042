from __future__ import annotations

import random

import pytest

from cartrescue.experiments import Arm, Experiment, assign_arm
from cartrescue.report.stats import (
    difference_interval,
    mean_difference_interval,
    probability_to_beat,
    sample_needed,
    wilson,
)

from ..test_experiments import KEY, T0


def test_wilson_interval_matches_the_published_values():
    # Newcombe (1998), table I: 0/10 → 0 to 0.2775; 81/263 → 0.2553 to 0.3662.
    none = wilson(0, 10)
    assert none is not None and none.low == 0 and none.high == pytest.approx(0.2775, abs=1e-4)
    some = wilson(81, 263)
    assert some is not None
    assert (some.low, some.high) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert wilson(0, 0) is None


def test_difference_interval_is_newcombes_hybrid_score():
    # Newcombe (1998), table II, example (a): 56/70 − 48/80 → 0.0524 to 0.3339.
    d = difference_interval(56, 70, 48, 80)
    assert d is not None
    assert d.estimate == pytest.approx(0.2)
    assert (d.low, d.high) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert d.excludes_zero
    assert difference_interval(1, 0, 1, 10) is None


def test_probability_to_beat_is_seeded_by_the_counts():
    assert probability_to_beat(120, 1000, 80, 1000) == probability_to_beat(120, 1000, 80, 1000)
    assert probability_to_beat(120, 1000, 80, 1000) > 0.99
    assert probability_to_beat(100, 1000, 100, 1000) == pytest.approx(0.5, abs=0.01)
    assert probability_to_beat(0, 0, 1, 1) is None


def test_sample_needed_gives_the_power_it_promises():
    n = sample_needed(0.08, 0.04)
    assert n is not None and 700 < n < 1000
    rng = random.Random(3)
    detected = 0
    for _ in range(300):
        a = sum(rng.random() < 0.12 for _ in range(n))
        b = sum(rng.random() < 0.08 for _ in range(n))
        d = difference_interval(a, n, b, n)
        detected += bool(d and d.low > 0)
    assert 0.72 < detected / 300 < 0.88  # 80 % power
    assert sample_needed(0.08, 0.0) is None


def test_mean_difference_interval_from_sums():
    d = mean_difference_interval(300.0, 1800.0, 100, 200.0, 1000.0, 100)
    assert d is not None and d.estimate == pytest.approx(1.0)
    assert d.low < 1.0 < d.high
    assert mean_difference_interval(1.0, 1.0, 1, 1.0, 1.0, 5) is None


def test_an_a_a_experiment_declares_a_difference_at_about_the_nominal_rate():
    """Two identical arms, 50 seeds: the lift interval excludes 0 about 5 % of the time."""
    experiment = Experiment("aa", (Arm("a"), Arm("b")), start=T0)
    people = [f"p{i}@example.com" for i in range(4000)]
    arms = [assign_arm(KEY, "shop", experiment, p).name for p in people]
    declared = 0
    for seed in range(50):
        rng = random.Random(seed)
        counts = {"a": [0, 0], "b": [0, 0]}
        for arm in arms:
            counts[arm][0] += 1
            counts[arm][1] += rng.random() < 0.10
        d = difference_interval(counts["b"][1], counts["b"][0], counts["a"][1], counts["a"][0])
        declared += bool(d and d.excludes_zero)
    # Binomial(50, 0.05): 8 or more happens less than 1 % of the time.
    assert declared <= 7, declared
