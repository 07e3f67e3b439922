"""Conversion rates with 95% intervals, and an arm compared against a baseline.

Pure functions over counts (stdlib `math` only). Every float they return is finite, whatever
the counts: an arm with no trials gives the no-information interval [0, 1] rather than NaN.

Sources:
- Wilson EB (1927), "Probable inference, the law of succession, and statistical inference",
  J Am Stat Assoc 22:209-212.
- Newcombe RG (1998a), "Two-sided confidence intervals for the single proportion: comparison
  of seven methods", Stat Med 17:857-872 (method 3: score interval without continuity
  correction).
- Newcombe RG (1998b), "Interval estimation for the difference between independent
  proportions: comparison of eleven methods", Stat Med 17:873-890 (method 10: hybrid score
  interval without continuity correction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95: float = 1.959963984540054
"""The 97.5% quantile of the standard normal distribution (two-sided 95% intervals)."""

MIN_EVENTS_PER_OUTCOME: int = 10
"""Conversions and non-conversions each arm needs before the normal approximation is trusted."""


@dataclass(frozen=True, slots=True)
class Rate:
    """A conversion rate successes / trials with its 95% Wilson score interval."""

    successes: int
    trials: int
    rate: float
    lower: float
    upper: float


@dataclass(frozen=True, slots=True)
class Difference:
    """An arm's rate minus the baseline's, with its 95% interval and a two-sided p-value."""

    difference: float
    lower: float
    upper: float
    p_value: float
    relative: float | None
    sufficient_data: bool
    note: str


def _check_counts(successes: int, trials: int, whose: str = "") -> None:
    if trials < 0:
        raise ValueError(f"{whose}trials must not be negative, got {trials}")
    if successes < 0:
        raise ValueError(f"{whose}successes must not be negative, got {successes}")
    if successes > trials:
        raise ValueError(f"{whose}successes ({successes}) must not exceed trials ({trials})")


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def wilson(successes: int, trials: int) -> Rate:
    """The rate successes / trials with its 95% Wilson score interval.

    With no trials there is no information: rate 0.0 and the interval [0, 1].
    Raises ValueError for negative counts or more successes than trials.
    """
    _check_counts(successes, trials)
    if trials == 0:
        return Rate(successes, trials, 0.0, 0.0, 1.0)
    n = trials
    p = successes / n
    q = 1.0 - p
    z2 = Z95 * Z95
    # Wilson (1927); Newcombe (1998a), Stat Med 17:857-872, method 3 (no continuity correction):
    #   (2np + z^2 -/+ z * sqrt(z^2 + 4npq)) / (2(n + z^2))
    centre = 2.0 * n * p + z2
    spread = Z95 * math.sqrt(z2 + 4.0 * n * p * q)
    denominator = 2.0 * (n + z2)
    # At p = 0 (p = 1) the lower (upper) limit is exactly 0 (1); rounding can miss it either
    # way, so it is set, and both limits are clamped to [0, 1] against rounding.
    lower = 0.0 if successes == 0 else _clamp((centre - spread) / denominator, 0.0, 1.0)
    upper = 1.0 if successes == n else _clamp((centre + spread) / denominator, 0.0, 1.0)
    return Rate(successes, trials, p, lower, upper)


def _pooled_z_test_p_value(arm: Rate, baseline: Rate) -> float:
    """Two-sided p-value of the pooled two-proportion z-test; 1.0 when it is undefined."""
    if arm.trials == 0 or baseline.trials == 0:
        return 1.0
    # Pooled two-proportion z-test; z^2 is Pearson's chi-square X^2 of the 2x2 table without
    # continuity correction (Pearson K (1900), Philosophical Magazine 50:157-175), so both
    # give the same two-sided p-value:
    #   p = (x1 + x0) / (n1 + n0),  se = sqrt(p (1 - p) (1/n1 + 1/n0)),  z = (p1 - p0) / se
    pooled = (arm.successes + baseline.successes) / (arm.trials + baseline.trials)
    variance = pooled * (1.0 - pooled) * (1.0 / arm.trials + 1.0 / baseline.trials)
    if variance <= 0.0:
        # Pooled proportion 0 or 1: both arms all non-conversions or all conversions, so no
        # evidence of a difference.
        return 1.0
    z = (arm.rate - baseline.rate) / math.sqrt(variance)
    # Two-sided normal tail: P(|Z| >= |z|) = erfc(|z| / sqrt(2)).
    return math.erfc(abs(z) / math.sqrt(2.0))


def _short_outcomes(rate: Rate) -> tuple[str, ...]:
    """The outcomes of which an arm has fewer than MIN_EVENTS_PER_OUTCOME."""
    counts = (("conversions", rate.successes), ("non-conversions", rate.trials - rate.successes))
    return tuple(outcome for outcome, count in counts if count < MIN_EVENTS_PER_OUTCOME)


def _shortfall_note(arm: Rate, baseline: Rate) -> str:
    """The empty string when both arms have enough of each outcome, else which arm lacks what."""
    short = {"the arm": _short_outcomes(arm), "the baseline": _short_outcomes(baseline)}
    if short["the arm"] and short["the arm"] == short["the baseline"]:
        short = {"the arm and in the baseline": short["the arm"]}
    parts = [
        " and ".join(f"fewer than {MIN_EVENTS_PER_OUTCOME} {outcome}" for outcome in outcomes)
        + f" in {where}"
        for where, outcomes in short.items()
        if outcomes
    ]
    return "too little data: " + ", and ".join(parts) if parts else ""


def compare(
    successes: int, trials: int, baseline_successes: int, baseline_trials: int
) -> Difference:
    """An arm's conversion rate compared against a baseline's: p1 - p0 (arm minus baseline).

    The interval is Newcombe's hybrid score interval built from the two Wilson intervals, the
    p-value that of the pooled two-proportion z-test (1.0 where it is undefined), `relative`
    is the difference over the baseline rate (None when the baseline rate is 0), and
    `sufficient_data` says whether each arm has at least MIN_EVENTS_PER_OUTCOME conversions
    and as many non-conversions (`note` says which arm lacks which otherwise).
    Raises ValueError for negative counts or more successes than trials in either arm.
    """
    _check_counts(successes, trials, "arm ")
    _check_counts(baseline_successes, baseline_trials, "baseline ")
    arm = wilson(successes, trials)
    baseline = wilson(baseline_successes, baseline_trials)
    p1, l1, u1 = arm.rate, arm.lower, arm.upper
    p0, l0, u0 = baseline.rate, baseline.lower, baseline.upper
    difference = p1 - p0
    # Newcombe (1998b), Stat Med 17:873-890, method 10 (hybrid score, no continuity correction):
    #   lower = d - sqrt((p1 - l1)^2 + (u0 - p0)^2),  upper = d + sqrt((u1 - p1)^2 + (p0 - l0)^2)
    # As sqrt(a^2 + b^2) <= a + b, the limits stay within [l1 - u0, u1 - l0], inside [-1, 1]
    # (also with the [0, 1] interval of an arm with no trials); the clamp only guards rounding.
    lower = _clamp(difference - math.hypot(p1 - l1, u0 - p0), -1.0, 1.0)
    upper = _clamp(difference + math.hypot(u1 - p1, p0 - l0), -1.0, 1.0)
    note = _shortfall_note(arm, baseline)
    return Difference(
        difference=difference,
        lower=lower,
        upper=upper,
        p_value=_pooled_z_test_p_value(arm, baseline),
        relative=None if p0 == 0.0 else difference / p0,
        sufficient_data=note == "",
        note=note,
    )
