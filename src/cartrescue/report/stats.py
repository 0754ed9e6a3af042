"""The statistics of the report, on scipy: intervals, lift, probability to beat, power.

- A conversion rate's 95 % interval is Wilson's score interval (``binomtest(...).
  proportion_ci(method="wilson")``): good coverage at small counts and rates near 0.
- The lift (difference of two rates) uses Newcombe's hybrid score interval, built from the
  two Wilson intervals; a difference is *declared* only when it excludes 0, so an A/A test
  declares one about 5 % of the time.
- The probability that an arm beats the control compares Beta(1 + k, 1 + n − k) posteriors
  by Monte Carlo, seeded by the counts, so the same data always gives the same number.
- The sample needed is the classic two-proportion power calculation (two-sided α = 5 %,
  power 80 %) for the minimum detectable lift.
- Incremental revenue's interval is Welch's normal interval on revenue per person.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "Interval",
    "difference_interval",
    "mean_difference_interval",
    "probability_to_beat",
    "sample_needed",
    "wilson",
]

CONFIDENCE = 0.95


@dataclass(frozen=True, slots=True)
class Interval:
    estimate: float
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def scaled(self, factor: float) -> Interval:
        return Interval(self.estimate * factor, self.low * factor, self.high * factor)

    def as_dict(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high}


def wilson(successes: int, trials: int) -> Interval | None:
    """The rate ``successes / trials`` with its 95 % Wilson interval; None without trials."""
    if trials <= 0:
        return None
    successes = min(max(successes, 0), trials)
    ci = stats.binomtest(successes, trials).proportion_ci(CONFIDENCE, method="wilson")
    return Interval(successes / trials, float(ci.low), float(ci.high))


def difference_interval(
    successes: int, trials: int, base_successes: int, base_trials: int
) -> Interval | None:
    """The difference of two rates (this minus base) with Newcombe's hybrid score interval
    (method 10 of Newcombe 1998), from the two Wilson intervals."""
    this, base = wilson(successes, trials), wilson(base_successes, base_trials)
    if this is None or base is None:
        return None
    d = this.estimate - base.estimate
    low = d - math.hypot(this.estimate - this.low, base.high - base.estimate)
    high = d + math.hypot(this.high - this.estimate, base.estimate - base.low)
    return Interval(d, low, high)


def probability_to_beat(
    successes: int, trials: int, base_successes: int, base_trials: int, draws: int = 200_000
) -> float | None:
    """P(this arm's rate > the base's) under Beta(1 + k, 1 + n − k) posteriors, by a Monte
    Carlo seeded with the four counts (the same counts give the same answer)."""
    if trials <= 0 or base_trials <= 0:
        return None
    seed = int.from_bytes(
        hashlib.sha256(f"{successes}/{trials}/{base_successes}/{base_trials}".encode()).digest()[
            :8
        ],
        "big",
    )
    rng = np.random.default_rng(seed)
    this = stats.beta(1 + successes, 1 + trials - successes).rvs(draws, random_state=rng)
    base = stats.beta(1 + base_successes, 1 + base_trials - base_successes).rvs(
        draws, random_state=rng
    )
    return float(np.mean(this > base))


def sample_needed(base_rate: float, lift: float, *, power: float = 0.8) -> int | None:
    """People needed *per group* to detect an absolute ``lift`` over ``base_rate`` with a
    two-sided 5 % test and the given power; None when the rates are not valid."""
    p1, p2 = base_rate, base_rate + lift
    if lift == 0 or not (0 < p1 < 1 and 0 < p2 < 1):
        return None
    z_alpha = float(stats.norm.ppf(1 - (1 - CONFIDENCE) / 2))
    z_beta = float(stats.norm.ppf(power))
    mean = (p1 + p2) / 2
    numerator = z_alpha * math.sqrt(2 * mean * (1 - mean)) + z_beta * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil((numerator / lift) ** 2)


def mean_difference_interval(
    total: float, squares: float, n: int, base_total: float, base_squares: float, base_n: int
) -> Interval | None:
    """The difference of two means (this minus base) from sums and sums of squares, with
    Welch's normal 95 % interval."""
    if n < 2 or base_n < 2:
        return None
    mean, base_mean = total / n, base_total / base_n
    var = max(squares - total * total / n, 0.0) / (n - 1)
    base_var = max(base_squares - base_total * base_total / base_n, 0.0) / (base_n - 1)
    se = math.sqrt(var / n + base_var / base_n)
    z = float(stats.norm.ppf(1 - (1 - CONFIDENCE) / 2))
    d = mean - base_mean
    return Interval(d, d - z * se, d + z * se)
