"""Conversion-rate statistics: Wilson intervals, Newcombe's hybrid score interval for a
difference, the pooled z-test, checked against published values, hand arithmetic and an
independent implementation (statsmodels, when installed)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from journey_conversions.stats import (
    MIN_EVENTS_PER_OUTCOME,
    Z95,
    Difference,
    Rate,
    compare,
    wilson,
)

PUBLISHED = 5e-5
"""Published values have 4 decimal places: ours must round to them."""

CROSS_CHECK = 1e-9
"""Agreement with statsmodels, which computes the same formulas."""


def close(actual: float, expected: float, tolerance: float) -> bool:
    return math.isclose(actual, expected, rel_tol=0.0, abs_tol=tolerance)


def floats_of(difference: Difference) -> list[float]:
    values = [difference.difference, difference.lower, difference.upper, difference.p_value]
    return values if difference.relative is None else [*values, difference.relative]


@st.composite
def count_pairs(draw: st.DrawFn, max_trials: int = 5000) -> tuple[int, int]:
    """(successes, trials) with trials in 0..max_trials, often at the ends of 0..trials."""
    trials = draw(st.integers(0, max_trials))
    successes = draw(st.one_of(st.sampled_from([0, trials]), st.integers(0, trials)))
    return successes, trials


class TestWilsonPublishedExamples:
    """The Wilson score interval reproduces Newcombe (1998a)'s method 3 intervals."""

    # Newcombe RG (1998a), Stat Med 17:857-872, method 3 (score, no continuity correction), as
    # quoted by two R packages' tests of their own implementations:
    # - m-Py/propint tests/testthat/test_Single_Proportion_CI.R ("ci.one.prop produces the
    #   results reported in Newcombe1998"): 81/263 and 15/148;
    # - petelaud/ratesci tests/testthat/test3.R ("Single proportion, Newcombe examples",
    #   wilsonci(x = c(15, 0, 1), n = c(148, 20, 29), cc = FALSE)): 15/148, 0/20 and 1/29.
    @pytest.mark.parametrize(
        ("successes", "trials", "lower", "upper"),
        [
            (81, 263, 0.2553, 0.3662),
            (15, 148, 0.0624, 0.1605),
            (0, 20, 0.0000, 0.1611),
            (1, 29, 0.0061, 0.1718),
        ],
        ids=["81/263", "15/148", "0/20", "1/29"],
    )
    def test_interval_matches_newcombe_to_4_decimals(
        self, successes: int, trials: int, lower: float, upper: float
    ) -> None:
        rate = wilson(successes, trials)
        assert close(rate.lower, lower, PUBLISHED)
        assert close(rate.upper, upper, PUBLISHED)
        assert rate.rate == successes / trials
        assert (rate.successes, rate.trials) == (successes, trials)

    def test_z95_is_the_upper_2_5_percent_normal_quantile(self) -> None:
        # P(Z > z) = erfc(z / sqrt(2)) / 2 must be 0.025.
        assert close(math.erfc(Z95 / math.sqrt(2.0)) / 2.0, 0.025, 1e-15)


class TestNewcombeHybridScorePublishedExamples:
    """The difference interval reproduces Newcombe (1998b)'s Table II, method 10."""

    # Newcombe RG (1998b), Stat Med 17:873-890, Table II, method 10 (score intervals combined,
    # no continuity correction), examples (a)-(h). Quoted in DeepPSP/DBCI
    # test/test-data/newcombee.csv, row "wilson" (that package's name for method 10; the file
    # holds all eleven methods for the eight examples and is checked by
    # test/test_dbci.py::test_newcombee_data). Also quoted: (a) and (b) in m-Py/propint
    # tests/testthat/test_Two_Independent_Props_CI.R ("ci.two.indep.props produces the results
    # reported in Newcombe1998"); (d) in petelaud/ratesci tests/testthat/test3.R ("Newcombe RD
    # example (d)", moverci(type = "wilson")).
    @pytest.mark.parametrize(
        ("arm", "baseline", "lower", "upper"),
        [
            ((56, 70), (48, 80), 0.0524, 0.3339),
            ((9, 10), (3, 10), 0.1705, 0.8090),
            ((6, 7), (2, 7), 0.0582, 0.8062),
            ((5, 56), (0, 29), -0.0381, 0.1926),
            ((0, 10), (0, 20), -0.1611, 0.2775),
            ((0, 10), (0, 10), -0.2775, 0.2775),
            ((10, 10), (0, 20), 0.6791, 1.0000),
            ((10, 10), (0, 10), 0.6075, 1.0000),
        ],
        ids=[
            "a-56/70-48/80",
            "b-9/10-3/10",
            "c-6/7-2/7",
            "d-5/56-0/29",
            "e-0/10-0/20",
            "f-0/10-0/10",
            "g-10/10-0/20",
            "h-10/10-0/10",
        ],
    )
    def test_interval_matches_newcombe_table_ii_to_4_decimals(
        self, arm: tuple[int, int], baseline: tuple[int, int], lower: float, upper: float
    ) -> None:
        result = compare(*arm, *baseline)
        assert close(result.lower, lower, PUBLISHED)
        assert close(result.upper, upper, PUBLISHED)
        assert result.difference == arm[0] / arm[1] - baseline[0] / baseline[1]

    def test_swapping_arm_and_baseline_mirrors_the_interval(self) -> None:
        forward = compare(56, 70, 48, 80)
        backward = compare(48, 80, 56, 70)
        assert backward.difference == -forward.difference
        assert close(backward.lower, -forward.upper, 1e-15)
        assert close(backward.upper, -forward.lower, 1e-15)


class TestPooledZTest:
    """The p-value is the two-sided pooled two-proportion z-test, 1.0 where it is undefined."""

    def test_hand_computed_example(self) -> None:
        # 30/100 against 20/100:
        #   pooled p = (30 + 20) / (100 + 100) = 0.25
        #   se = sqrt(0.25 * 0.75 * (1/100 + 1/100)) = sqrt(0.00375) = 0.0612372
        #   z = (0.30 - 0.20) / 0.0612372 = 1.632993   (z^2 = 0.01 / 0.00375 = 8/3)
        # Check by Pearson's chi-square of the table [[30, 70], [20, 80]]: expected counts
        # 25, 75, 25, 75, so X^2 = 2 * (5^2/25 + 5^2/75) = 2 * (1 + 1/3) = 8/3 = z^2.
        #   p = P(|Z| >= 1.632993) = 2 * (1 - Phi(1.632993)) = 2 * (1 - 0.948765) = 0.1025
        result = compare(30, 100, 20, 100)
        assert close(result.p_value, 0.1025, PUBLISHED)
        assert close(result.difference, 0.10, 1e-15)
        assert result.relative is not None
        assert close(result.relative, 0.5, 1e-15)  # 0.10 / 0.20

    def test_p_value_does_not_depend_on_which_arm_is_the_baseline(self) -> None:
        assert compare(30, 100, 20, 100).p_value == compare(20, 100, 30, 100).p_value

    def test_equal_rates_give_p_value_one(self) -> None:
        assert compare(20, 100, 10, 50).p_value == 1.0

    @pytest.mark.parametrize(
        ("arm", "baseline"),
        [((0, 10), (0, 20)), ((10, 10), (20, 20)), ((0, 0), (5, 10)), ((5, 10), (0, 0))],
        ids=["no-conversions-anywhere", "all-conversions-everywhere", "no-arm", "no-baseline"],
    )
    def test_undefined_test_gives_p_value_one(
        self, arm: tuple[int, int], baseline: tuple[int, int]
    ) -> None:
        assert compare(*arm, *baseline).p_value == 1.0

    def test_a_large_clear_difference_gives_a_tiny_p_value(self) -> None:
        assert 0.0 < compare(10, 10, 0, 20).p_value < 1e-7


class TestWilsonEdgeCases:
    """Zero trials, zero successes, all successes and invalid counts."""

    def test_zero_trials_give_rate_zero_and_the_whole_unit_interval(self) -> None:
        assert wilson(0, 0) == Rate(successes=0, trials=0, rate=0.0, lower=0.0, upper=1.0)

    def test_zero_successes_have_lower_limit_exactly_zero(self) -> None:
        for trials in (1, 2, 20, 4999, 10**9):
            rate = wilson(0, trials)
            assert (rate.rate, rate.lower) == (0.0, 0.0)
            assert 0.0 < rate.upper < 1.0

    def test_all_successes_have_upper_limit_exactly_one(self) -> None:
        for trials in (1, 2, 20, 4999, 10**9):
            rate = wilson(trials, trials)
            assert (rate.rate, rate.upper) == (1.0, 1.0)
            assert 0.0 < rate.lower < 1.0

    def test_interval_is_symmetric_under_swapping_successes_and_failures(self) -> None:
        rate, mirrored = wilson(15, 148), wilson(133, 148)
        assert close(rate.lower, 1.0 - mirrored.upper, 1e-15)
        assert close(rate.upper, 1.0 - mirrored.lower, 1e-15)

    @pytest.mark.parametrize(
        ("successes", "trials"),
        [(-1, 10), (0, -1), (-1, -1), (11, 10), (1, 0)],
        ids=["negative-successes", "negative-trials", "both-negative", "more-than-trials", "1/0"],
    )
    def test_invalid_counts_raise_value_error(self, successes: int, trials: int) -> None:
        with pytest.raises(ValueError, match=r"successes|trials"):
            wilson(successes, trials)

    def test_rate_is_immutable(self) -> None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            wilson(1, 2).rate = 0.6  # type: ignore[misc]


class TestCompareEdgeCases:
    """Zero trials, zero and all conversions, and invalid counts in either arm."""

    def test_no_trials_in_either_arm_gives_the_whole_difference_range(self) -> None:
        assert compare(0, 0, 0, 0) == Difference(
            difference=0.0,
            lower=-1.0,
            upper=1.0,
            p_value=1.0,
            relative=None,
            sufficient_data=False,
            note=(
                "too little data: fewer than 10 conversions and fewer than 10 non-conversions"
                " in the arm and in the baseline"
            ),
        )

    @pytest.mark.parametrize(
        ("arm", "baseline"),
        [((0, 0), (5, 10)), ((5, 10), (0, 0)), ((0, 0), (3000, 3000)), ((0, 0), (0, 3000))],
        ids=["no-arm", "no-baseline", "no-arm-all-baseline", "no-arm-none-baseline"],
    )
    def test_an_arm_without_trials_gives_a_finite_interval_inside_minus_one_one(
        self, arm: tuple[int, int], baseline: tuple[int, int]
    ) -> None:
        result = compare(*arm, *baseline)
        assert all(math.isfinite(value) for value in floats_of(result))
        assert -1.0 <= result.lower <= result.difference <= result.upper <= 1.0
        assert result.p_value == 1.0
        assert not result.sufficient_data

    def test_an_arm_without_trials_bounds_the_difference_by_the_other_arms_interval(
        self,
    ) -> None:
        # No information on the arm's rate (anything in [0, 1]): the lower limit is 0 minus the
        # baseline's upper Wilson limit.
        result, baseline = compare(0, 0, 5, 10), wilson(5, 10)
        assert close(result.lower, -baseline.upper, 1e-15)
        assert result.upper <= 1.0 - baseline.lower

    def test_zero_baseline_rate_has_no_relative_difference(self) -> None:
        assert compare(5, 56, 0, 29).relative is None

    def test_relative_difference_is_the_difference_over_the_baseline_rate(self) -> None:
        result = compare(56, 70, 48, 80)
        assert result.relative is not None
        assert close(result.relative, (0.8 - 0.6) / 0.6, 1e-12)

    def test_all_conversions_against_none_reaches_the_upper_bound_one(self) -> None:
        result = compare(10, 10, 0, 20)
        assert (result.difference, result.upper) == (1.0, 1.0)

    def test_no_conversions_against_all_reaches_the_lower_bound_minus_one(self) -> None:
        result = compare(0, 20, 10, 10)
        assert (result.difference, result.lower) == (-1.0, -1.0)
        assert result.relative == -1.0

    @pytest.mark.parametrize(
        ("counts", "whose"),
        [
            ((-1, 10, 5, 10), "arm"),
            ((11, 10, 5, 10), "arm"),
            ((0, -1, 5, 10), "arm"),
            ((5, 10, -1, 10), "baseline"),
            ((5, 10, 11, 10), "baseline"),
            ((5, 10, 0, -1), "baseline"),
        ],
        ids=[
            "arm-negative-successes",
            "arm-more-than-trials",
            "arm-negative-trials",
            "baseline-negative-successes",
            "baseline-more-than-trials",
            "baseline-negative-trials",
        ],
    )
    def test_invalid_counts_raise_value_error_naming_the_arm(
        self, counts: tuple[int, int, int, int], whose: str
    ) -> None:
        with pytest.raises(ValueError, match=f"^{whose} "):
            compare(*counts)


class TestSufficientData:
    """Each arm needs 10 conversions and 10 non-conversions; the note says who lacks what."""

    def test_the_threshold_is_ten_events_per_outcome(self) -> None:
        assert MIN_EVENTS_PER_OUTCOME == 10

    def test_exactly_ten_of_each_outcome_in_each_arm_is_sufficient(self) -> None:
        result = compare(10, 20, 10, 20)
        assert result.sufficient_data
        assert result.note == ""

    @pytest.mark.parametrize(
        ("counts", "note"),
        [
            ((9, 100, 50, 100), "fewer than 10 conversions in the arm"),
            ((91, 100, 50, 100), "fewer than 10 non-conversions in the arm"),
            ((50, 100, 9, 100), "fewer than 10 conversions in the baseline"),
            ((50, 100, 91, 100), "fewer than 10 non-conversions in the baseline"),
            (
                (9, 15, 50, 100),
                "fewer than 10 conversions and fewer than 10 non-conversions in the arm",
            ),
            ((9, 100, 9, 100), "fewer than 10 conversions in the arm and in the baseline"),
            (
                (10, 10, 0, 20),
                "fewer than 10 non-conversions in the arm, and fewer than 10 conversions in"
                " the baseline",
            ),
            (
                (0, 0, 50, 100),
                "fewer than 10 conversions and fewer than 10 non-conversions in the arm",
            ),
        ],
        ids=[
            "arm-conversions",
            "arm-non-conversions",
            "baseline-conversions",
            "baseline-non-conversions",
            "arm-both",
            "both-arms-conversions",
            "arm-non-conversions-baseline-conversions",
            "arm-without-trials",
        ],
    )
    def test_insufficient_data_note_names_the_arm_and_the_short_count(
        self, counts: tuple[int, int, int, int], note: str
    ) -> None:
        result = compare(*counts)
        assert not result.sufficient_data
        assert result.note == f"too little data: {note}"


class TestAlwaysFinite:
    """Whatever the counts, every float is finite and every interval holds its estimate."""

    @given(count_pairs(max_trials=10**9))
    def test_wilson_interval_is_inside_zero_one_and_holds_the_rate(
        self, rate_counts: tuple[int, int]
    ) -> None:
        rate = wilson(*rate_counts)
        assert all(math.isfinite(value) for value in (rate.rate, rate.lower, rate.upper))
        assert 0.0 <= rate.lower <= rate.rate <= rate.upper <= 1.0

    @given(count_pairs(max_trials=10**9), count_pairs(max_trials=10**9))
    def test_compare_is_finite_and_its_interval_holds_the_difference(
        self, arm: tuple[int, int], baseline: tuple[int, int]
    ) -> None:
        result = compare(*arm, *baseline)
        assert all(math.isfinite(value) for value in floats_of(result))
        assert -1.0 <= result.lower <= result.difference <= result.upper <= 1.0
        assert 0.0 <= result.p_value <= 1.0
        assert result.sufficient_data == (result.note == "")


@pytest.fixture(scope="module")
def proportion() -> ModuleType:
    """statsmodels.stats.proportion, or a skip when statsmodels is not installed."""
    module: ModuleType = pytest.importorskip("statsmodels.stats.proportion")
    return module


class TestAgainstStatsmodels:
    """Rates, intervals and p-values equal statsmodels' on random counts (trials 0..5000)."""

    @given(count_pairs())
    def test_wilson_equals_statsmodels_proportion_confint(
        self, proportion: ModuleType, rate_counts: tuple[int, int]
    ) -> None:
        successes, trials = rate_counts
        if trials == 0:
            return  # statsmodels has no answer for no trials (0/0)
        lower, upper = proportion.proportion_confint(successes, trials, method="wilson")
        rate = wilson(successes, trials)
        assert close(rate.lower, float(lower), CROSS_CHECK)
        assert close(rate.upper, float(upper), CROSS_CHECK)

    @given(count_pairs(), count_pairs())
    def test_interval_equals_statsmodels_newcomb(
        self, proportion: ModuleType, arm: tuple[int, int], baseline: tuple[int, int]
    ) -> None:
        if arm[1] == 0 or baseline[1] == 0:
            return  # statsmodels has no answer for an arm without trials (0/0)
        lower, upper = proportion.confint_proportions_2indep(
            *arm, *baseline, compare="diff", method="newcomb"
        )
        result = compare(*arm, *baseline)
        assert close(result.lower, float(lower), CROSS_CHECK)
        assert close(result.upper, float(upper), CROSS_CHECK)

    @given(count_pairs(), count_pairs())
    def test_p_value_equals_statsmodels_pooled_ztest_where_that_is_finite(
        self, proportion: ModuleType, arm: tuple[int, int], baseline: tuple[int, int]
    ) -> None:
        with warnings.catch_warnings():
            # Where the test is undefined (0/0), numpy warns and statsmodels answers NaN.
            warnings.simplefilter("ignore", RuntimeWarning)
            _, expected = proportion.proportions_ztest(
                [arm[0], baseline[0]], [arm[1], baseline[1]], value=0, prop_var=False
            )
        expected = float(expected)
        pooled_trials = arm[1] + baseline[1]
        defined = arm[1] > 0 and baseline[1] > 0 and 0 < arm[0] + baseline[0] < pooled_trials
        assert math.isfinite(expected) == defined
        p_value = compare(*arm, *baseline).p_value
        assert close(p_value, expected if defined else 1.0, CROSS_CHECK)
