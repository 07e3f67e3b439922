"""The journey report as text: the small formatting helpers, and whole reports made by hand
(every section, and the empty and degenerate ones), never printing "nan"."""

# The en dash is the interval separator the report prints.
# ruff: noqa: RUF001

from __future__ import annotations

import math

import pytest
from google.protobuf import duration_pb2
from journeys.conversions.v1 import events_pb2, journey_pb2, report_pb2

from journey_conversions import report_text as rt

DAY = 86_400
HOUR = 3_600


def rate(successes: int, trials: int, lower: float, upper: float) -> report_pb2.RateEstimate:
    return report_pb2.RateEstimate(
        successes=successes,
        trials=trials,
        rate=successes / trials if trials else 0.0,
        lower=lower,
        upper=upper,
    )


def eur(amount_micros: int) -> journey_pb2.Money:
    return journey_pb2.Money(currency_code="EUR", amount_micros=amount_micros)


def span(seconds: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds)


def sections(text: str) -> list[str]:
    """The first line (the heading) of each blank-line-separated section."""
    return [block.splitlines()[0] for block in text.split("\n\n")]


def full_report() -> report_pb2.JourneyReport:
    """Two versions (the second with too little data), holdouts, a step, a path, two messages
    with credits by model, 3 days and a named conversion."""
    report = report_pb2.JourneyReport(
        journey_id="welcome",
        entered=1200,
        active=1300,
        exited=40,
        engaged=800,
        goal_conversions=150,
        conversion_rate_entered=0.125,
        conversion_rate_engaged=0.1875,
        repeat_goal_events=4,
        value=[
            eur(1_234_500_000),
            journey_pb2.Money(currency_code="USD", amount_micros=99_000_000),
        ],
        goal_events_credited_elsewhere=3,
        credited_elsewhere=[
            report_pb2.JourneyCount(journey_id="promo", count=2),
            report_pb2.JourneyCount(journey_id="winback", count=1),
        ],
        baseline_version=1,
        time_zone="Europe/Paris",
    )
    report.start_time.FromSeconds(1_793_487_600)  # 2026-10-31 23:00 UTC, Nov 1 in Paris
    report.end_time.FromSeconds(1_793_487_600 + 3 * DAY)
    v1 = report.versions.add(
        version=1,
        entered=600,
        engaged=400,
        goal_conversions=60,
        conversion_rate_entered=rate(60, 600, 0.0786, 0.1264),
        conversion_rate_engaged=rate(60, 400, 0.1185, 0.1881),
    )
    v1.time_to_conversion.conversions = 60
    v1.time_to_conversion.median_from_entry.CopyFrom(span(2 * DAY + 4 * HOUR))
    v1.time_to_conversion.p90_from_entry.CopyFrom(span(5 * DAY))
    v1.holdout.treated.CopyFrom(rate(60, 600, 0.0785, 0.1264))
    v1.holdout.holdout.CopyFrom(rate(5, 100, 0.0215, 0.1118))
    v1.holdout.lift.CopyFrom(
        report_pb2.RateDifference(
            difference=0.05,
            lower=-0.004,
            upper=0.087,
            p_value=0.12,
            relative_difference=1.0,
            sufficient_data=False,
            note="the holdout has fewer than 10 conversions",
        )
    )
    report.versions.add(
        version=2,
        entered=6,
        engaged=4,
        goal_conversions=2,
        conversion_rate_entered=rate(2, 6, 0.0968, 0.7000),
        conversion_rate_engaged=rate(2, 4, 0.15, 0.85),
        difference_from_baseline=report_pb2.RateDifference(
            difference=0.2333,
            lower=-0.0512,
            upper=0.6,
            p_value=0.0004,
            relative_difference=2.333,
            sufficient_data=False,
            note="version 2 has fewer than 10 conversions",
        ),
    )
    report.time_to_conversion.conversions = 62
    report.time_to_conversion.median_from_entry.CopyFrom(span(2 * DAY + 2 * HOUR))
    report.time_to_conversion.p90_from_entry.CopyFrom(span(4 * DAY + 15 * HOUR))
    report.time_to_conversion.median_from_last_touch.CopyFrom(span(50 * 60))
    report.time_to_conversion.p90_from_last_touch.CopyFrom(span(DAY + HOUR))
    report.holdout.treated.CopyFrom(rate(62, 606, 0.08, 0.13))
    report.holdout.holdout.CopyFrom(rate(5, 100, 0.0215, 0.1118))
    report.holdout.lift.CopyFrom(
        report_pb2.RateDifference(
            difference=0.0523, lower=0.001, upper=0.09, p_value=0.04, sufficient_data=True
        )
    )
    report.steps.add(
        key="welcome-step",
        reached=10,
        goal_conversions=2,
        conversion_rate_reached=rate(2, 10, 0.0567, 0.5098),
        named_conversions=[report_pb2.ConversionCount(conversion_id="signup", count=3)],
    )
    report.paths.add(key="a/b", reached=0, conversion_rate_reached=rate(0, 0, 0.0, 1.0))
    report.messages.add(
        message_id="email-1",
        channel=journey_pb2.CHANNEL_EMAIL,
        touchpoints=[
            report_pb2.ActionCount(action=events_pb2.TOUCHPOINT_ACTION_DELIVERED, count=10),
            report_pb2.ActionCount(action=events_pb2.TOUCHPOINT_ACTION_OPENED, count=4),
        ],
        credited_conversions=2,
        credits=[
            report_pb2.ModelCredit(model=report_pb2.CREDIT_MODEL_LAST_TOUCH, conversions=2.0),
            report_pb2.ModelCredit(model=report_pb2.CREDIT_MODEL_FIRST_TOUCH, conversions=1.0),
            report_pb2.ModelCredit(model=report_pb2.CREDIT_MODEL_LINEAR, conversions=1.5),
            report_pb2.ModelCredit(model=report_pb2.CREDIT_MODEL_POSITION_BASED, conversions=1.4),
            report_pb2.ModelCredit(model=report_pb2.CREDIT_MODEL_TIME_DECAY, conversions=1.6666),
        ],
    )
    report.messages.add(
        message_id="push-1",
        channel=journey_pb2.CHANNEL_MOBILE_PUSH,
        touchpoints=[
            report_pb2.ActionCount(action=events_pb2.TOUCHPOINT_ACTION_DELIVERED, count=3)
        ],
    )
    for day, goals in (("2026-11-01", 1), ("2026-11-02", 0), ("2026-11-03", 2)):
        report.days.add(
            date=day, goal_conversions=goals, named_conversions=1, value=[eur(goals * 10_000_000)]
        )
    report.named_conversions.add(
        conversion_id="signup", name="Signed up", count=3, value=[eur(-5_000_000)]
    )
    return report


class TestDuration:
    """Spans print as their two largest units, rounded to the smaller one."""

    @pytest.mark.parametrize(
        ("seconds", "text"),
        [
            (0, "0s"),
            (0.4, "<1s"),
            (45, "45s"),
            (59.6, "1m"),
            (35 * 60, "35m"),
            (35 * 60 + 10, "35m 10s"),
            (2 * HOUR + 5 * 60 + 20, "2h 5m"),
            (HOUR, "1h"),
            (2 * DAY + 4 * HOUR + 10 * 60, "2d 4h"),
            (2 * DAY, "2d"),
            (DAY - 20, "1d"),
            (400 * DAY, "400d"),
            (-5 * 60, "-5m"),
            (math.nan, "–"),
        ],
    )
    def test_examples(self, seconds: float, text: str) -> None:
        assert rt.duration(seconds) == text

    def test_a_protobuf_duration_counts_its_nanos(self) -> None:
        assert rt.proto_duration(duration_pb2.Duration(seconds=59, nanos=600_000_000)) == "1m"


class TestPercents:
    """Rates print as percentages with one decimal and their 95% interval."""

    def test_percent(self) -> None:
        assert rt.percent(0.1234) == "12.3%"
        assert rt.percent(1.0) == "100.0%"
        assert rt.percent(-0.00001) == "0.0%"
        assert rt.percent(math.inf) == "–"

    def test_rate_with_interval(self) -> None:
        assert rt.rate_estimate(rate(123, 1000, 0.1033, 0.1458)) == "12.3% [10.3–14.6]"

    def test_a_rate_without_trials_is_a_dash_not_zero_to_a_hundred(self) -> None:
        assert rt.rate_estimate(rate(0, 0, 0.0, 1.0)) == "–"

    def test_non_finite_bounds_are_left_out(self) -> None:
        estimate = report_pb2.RateEstimate(successes=1, trials=2, rate=0.5, lower=math.nan)
        assert rt.rate_estimate(estimate) == "50.0%"

    def test_signed_relative_change(self) -> None:
        assert rt.signed_percent(0.182) == "+18.2%"
        assert rt.signed_percent(-0.5) == "-50.0%"
        assert rt.signed_percent(0.0) == "0.0%"


class TestDifferences:
    """Differences print as signed percentage points, interval and p-value."""

    def test_points_are_signed(self) -> None:
        assert rt.points(0.021) == "+2.1 pts"
        assert rt.points(-0.005) == "-0.5 pts"
        assert rt.points(-0.0001) == "0.0 pts"
        assert rt.points(math.nan) == "–"

    @pytest.mark.parametrize(
        ("value", "text"),
        [(0.1234, "p=0.12"), (1.0, "p=1.00"), (0.0042, "p=0.004"), (0.0001, "p<0.001")],
    )
    def test_p_values(self, value: float, text: str) -> None:
        assert rt.p_value(value) == text

    def test_difference_with_interval_and_p_value(self) -> None:
        difference = report_pb2.RateDifference(difference=0.021, lower=-0.005, upper=0.047)
        difference.p_value = 0.12
        assert rt.rate_difference(difference) == "+2.1 pts [-0.5–4.7] p=0.12"

    def test_relative_difference_unset_is_a_dash(self) -> None:
        assert rt.relative(report_pb2.RateDifference(difference=0.1)) == "–"
        assert rt.relative(report_pb2.RateDifference(relative_difference=0.25)) == "+25.0%"


class TestMoney:
    """Money prints as units with two decimals and its currency code."""

    def test_amounts(self) -> None:
        assert rt.money("EUR", 1_234_500_000) == "1,234.50 EUR"
        assert rt.money("USD", -5_000_000) == "-5.00 USD"
        assert rt.money("USD", -1) == "0.00 USD"
        assert rt.money("JPY", 0.4) == "0.00 JPY"
        assert rt.money("EUR", math.nan) == "–"

    def test_lists(self) -> None:
        fractional = report_pb2.FractionalMoney(currency_code="USD", amount_micros=3_333_333.3)
        assert rt.money_list([eur(12_000_000), fractional]) == "12.00 EUR, 3.33 USD"
        assert rt.money_list([]) == "–"


class TestSparkline:
    """The sparkline scales to the busiest day and keeps empty days apart from quiet ones."""

    def test_scaled_to_the_largest(self) -> None:
        assert rt.sparkline([0, 7, 14]) == "▁▅█"

    def test_a_small_day_is_above_an_empty_one(self) -> None:
        line = rt.sparkline([0, 1, 1000])
        assert line[0] == "▁" and line[1] == "▂" and line[2] == "█"

    def test_all_zero_days_are_flat(self) -> None:
        assert rt.sparkline([0, 0, 0]) == "▁▁▁"
        assert rt.sparkline([]) == ""

    def test_monotonic(self) -> None:
        line = rt.sparkline(list(range(20)))
        assert [rt.SPARK.index(c) for c in line] == sorted(rt.SPARK.index(c) for c in line)


class TestTable:
    """Columns align to their widest cell, left or right, without trailing spaces."""

    def test_alignment(self) -> None:
        lines = rt.table([["Name", "N", "Note"], ["a", "1000", ""], ["long name", "2"]], "lrl")
        assert lines == [
            "  Name          N  Note",
            "  a          1000",
            "  long name     2",
        ]

    def test_no_rows(self) -> None:
        assert rt.table([]) == []


class TestRender:
    """Whole reports render in section order, each section skipped when it is empty."""

    def test_every_section_in_order(self) -> None:
        text = rt.render(full_report())
        assert sections(text) == [
            "Journey welcome",
            "Summary",
            "Versions (95% intervals; time to conversion from entry)",
            "Holdout lift (goal met, treated against holdout)",
            "Steps",
            "Paths",
            "Messages (goal conversions credited by each model)",
            "Per day (Europe/Paris)",
            "Named conversions",
        ]
        assert "nan" not in text.lower()

    def test_header_in_the_report_time_zone(self) -> None:
        text = rt.render(full_report())
        assert "Range      2026-11-01 00:00 → 2026-11-04 00:00 (end excluded)" in text
        assert "Time zone  Europe/Paris" in text
        assert "Baseline   version 1" in text
        assert "Versions   all (1, 2)" in text

    def test_summary(self) -> None:
        text = rt.render(full_report())
        assert "  Goal conversions             150  (12.5% of entered, 18.8% of engaged)" in text
        assert "  Value               1,234.50 EUR\n                         99.00 USD\n" in text
        assert "  Credited elsewhere             3  (promo 2, winback 1)" in text
        assert (
            "  Time to conversion         2d 2h  (median from entry, p90 4d 15h; "
            "from the credited touchpoint: median 50m, p90 1d 1h)"
        ) in text

    def test_versions_side_by_side_with_the_note_of_insufficient_data(self) -> None:
        lines = rt.render(full_report()).splitlines()
        v1 = next(line for line in lines if line.startswith("  1 "))
        v2 = next(line for line in lines if line.startswith("  2* "))
        assert v1.split()[1:4] == ["600", "400", "60"]
        assert "10.0% [7.9–12.6]" in v1 and "baseline" in v1
        assert v1.endswith("baseline                        2d 4h   5d")
        assert "+23.3 pts [-5.1–60.0] p<0.001" in v2
        assert "  * version 2: version 2 has fewer than 10 conversions" in lines

    def test_holdout_lift_per_version_and_overall(self) -> None:
        text = rt.render(full_report())
        block = next(b for b in text.split("\n\n") if b.startswith("Holdout"))
        assert "+5.0 pts [-0.4–8.7] p=0.12" in block and "+100.0%" in block
        assert "  all " in block and "+5.2 pts [0.1–9.0] p=0.04" in block
        assert "* version 1: the holdout has fewer than 10 conversions" in block
        assert "* all versions" not in block

    def test_steps_and_paths(self) -> None:
        text = rt.render(full_report())
        assert "welcome-step       10            2  20.0% [5.7–51.0]  Signed up 3" in text
        assert "a/b         0            0  –                –" in text

    def test_messages_by_credit_model(self) -> None:
        block = next(b for b in rt.render(full_report()).split("\n\n") if b.startswith("Messages"))
        assert block.splitlines()[1].split() == [
            "Message", "Channel", "Touchpoints", "Last", "First", "Linear", "Position", "Decay"
        ]  # fmt: skip
        assert block.splitlines()[2].split() == [
            "email-1", "email", "14", "2.00", "1.00", "1.50", "1.40", "1.67"
        ]  # fmt: skip
        assert block.splitlines()[3].split() == ["push-1", "mobile_push", "3", *["–"] * 5]

    def test_messages_without_credits_show_last_touch_credit(self) -> None:
        report = full_report()
        for m in report.messages:
            del m.credits[:]
        block = next(b for b in rt.render(report).split("\n\n") if b.startswith("Messages"))
        assert block.splitlines()[0] == "Messages (goal conversions credited, last touch)"
        assert block.splitlines()[2].split() == ["email-1", "email", "14", "2"]

    def test_a_few_days_as_a_table_with_totals(self) -> None:
        block = next(b for b in rt.render(full_report()).split("\n\n") if b.startswith("Per day"))
        assert block.splitlines()[2].split() == ["2026-11-01", "1", "1", "10.00", "EUR"]
        assert block.splitlines()[-1].split() == ["Total", "3", "3", "30.00", "EUR"]

    def test_many_days_as_a_sparkline(self) -> None:
        report = full_report()
        del report.days[:]
        for day in range(1, 31):
            report.days.add(date=f"2026-11-{day:02d}", goal_conversions=day % 5)
        block = next(b for b in rt.render(report).split("\n\n") if b.startswith("Per day"))
        assert block.splitlines()[0] == "Per day (Europe/Paris, 30 days)"
        line = block.splitlines()[1]
        assert "2026-11-01 ▄▅▆█▁" in line and " 2026-11-30" in line
        assert "max 4 on 2026-11-04" in line
        assert "60 goal conversions, 0 named conversions" in block
        assert "Value" not in block

    def test_many_days_without_conversions(self) -> None:
        report = report_pb2.JourneyReport(journey_id="quiet")
        for day in range(1, 21):
            report.days.add(date=f"2026-11-{day:02d}")
        block = rt.render(report).split("\n\n")[-1]
        assert "▁" * 20 in block and "none" in block

    def test_named_conversions(self) -> None:
        text = rt.render(full_report())
        assert "signup      Signed up      3  -5.00 EUR" in text

    def test_an_empty_report_has_a_header_and_a_summary(self) -> None:
        text = rt.render(report_pb2.JourneyReport(journey_id="new"))
        assert sections(text) == ["Journey new", "Summary"]
        assert "the beginning" in text and "Time zone  UTC" in text
        assert "Baseline   none" in text
        assert "nan" not in text.lower()

    def test_versions_without_conversions(self) -> None:
        report = report_pb2.JourneyReport(journey_id="welcome", entered=5, baseline_version=1)
        report.versions.add(version=1, entered=5, conversion_rate_entered=rate(0, 5, 0.0, 0.4345))
        report.versions.add(
            version=2,
            conversion_rate_entered=rate(0, 0, 0.0, 1.0),
            difference_from_baseline=report_pb2.RateDifference(p_value=1.0),
        )
        report.holdout.CopyFrom(report_pb2.HoldoutLift())
        text = rt.render(report)
        assert "Holdout" not in text
        assert "0.0% [0.0–43.5]" in text
        assert "  Goal conversions    0  (0.0% of entered)\n" in text
        assert "nan" not in text.lower()

    def test_non_finite_doubles_never_print_nan(self) -> None:
        report = full_report()
        report.conversion_rate_entered = math.nan
        report.versions[1].difference_from_baseline.difference = math.inf
        report.versions[1].difference_from_baseline.p_value = math.nan
        report.messages[0].credits[0].conversions = math.nan
        text = rt.render(report).lower()
        assert "nan" not in text and "inf" not in text
