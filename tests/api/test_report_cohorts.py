"""The report's cohort figures on small hand-checked cases: versions compared with a baseline,
holdout enrollments (never credited, compared for lift), time to conversion, and the output for
empty journeys and versions without conversions (no NaN, no division by zero)."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import json_format
from journeys.conversions.v1 import report_pb2
from journeys.conversions.v1 import service_pb2 as pb

from tests.builders import (
    ago,
    define_journey,
    enter,
    error_reason,
    goal,
    goal_event,
    message,
    touchpoint,
)

if TYPE_CHECKING:
    from tests.builders import Stub


async def report_of(
    stub: Stub, version: int = 0, baseline_version: int = 0
) -> report_pb2.JourneyReport:
    request = pb.GetJourneyReportRequest(
        journey_id="welcome", version=version, baseline_version=baseline_version
    )
    return (await stub.GetJourneyReport(request)).report


async def define(stub: Stub) -> None:
    """Versions 1 and 2 of "welcome", goal: form "demo" submitted."""
    for version in (1, 2):
        await stub.DefineJourney(
            define_journey(
                "welcome", [message("email-1")], goal("FORM_SUBMITTED", form_ids=["demo"]), version
            )
        )


async def enrol(
    stub: Stub, contact: str, version: int, *, converts: bool, holdout: bool = False
) -> None:
    """The contact enters 3 days ago; unless holdout it gets email-1 2 days ago; if `converts`
    it submits the form 1 day ago."""
    await stub.EnterJourney(
        enter(f"e-{contact}", contact, "welcome", ago(days=3), version, holdout=holdout)
    )
    if not holdout:
        await stub.RecordTouchpoint(
            pb.RecordTouchpointRequest(
                touchpoint=touchpoint(f"t-{contact}", contact, "welcome", "email-1", ago(days=2))
            )
        )
    if converts:
        await stub.RecordGoalEvent(
            pb.RecordGoalEventRequest(
                goal_event=goal_event(
                    f"g-{contact}", contact, "FORM_SUBMITTED", ago(days=1), form_id="demo"
                )
            )
        )


def no_nan(report: report_pb2.JourneyReport) -> None:
    """Every double of the report is finite, and its JSON has no NaN."""
    text = json_format.MessageToJson(report)
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)

    def walk(value: object) -> None:
        if isinstance(value, float):
            assert math.isfinite(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json_format.MessageToDict(report))


class TestVersions:
    """Each version's cohort, its Wilson intervals and its difference from the baseline."""

    @pytest.fixture
    async def two_versions(self, tenant_stub: Stub) -> Stub:
        await define(tenant_stub)
        for i in range(4):  # version 1: 1 of 4 converts
            await enrol(tenant_stub, f"a{i}", 1, converts=i == 0)
        for i in range(2):  # version 2: 2 of 2 convert
            await enrol(tenant_stub, f"b{i}", 2, converts=True)
        return tenant_stub

    async def test_rates_have_wilson_intervals(self, two_versions: Stub) -> None:
        report = await report_of(two_versions)
        v1, v2 = report.versions
        assert (v1.version, v1.entered, v1.engaged, v1.goal_conversions) == (1, 4, 4, 1)
        # 1/4 by hand: n = 4, p = 0.25, z^2 = 3.8415; (2np + z^2 -/+ z sqrt(z^2 + 4npq)) /
        # (2(n + z^2)) = (5.8415 -/+ 5.1264) / 15.6829 = 0.0456 and 0.6994.
        rate = v1.conversion_rate_entered
        assert (rate.successes, rate.trials, rate.rate) == (1, 4, 0.25)
        assert (rate.lower, rate.upper) == pytest.approx((0.0456, 0.6994), abs=1e-4)
        # 2/2: the upper end is exactly 1; lower = 2n / (2(n + z^2)) = 4 / 11.6829 = 0.3424.
        rate = v2.conversion_rate_entered
        assert (rate.rate, rate.upper) == (1.0, 1.0)
        assert rate.lower == pytest.approx(0.3424, abs=1e-4)
        assert v2.conversion_rate_engaged == v2.conversion_rate_entered

    async def test_the_default_baseline_is_the_lowest_version(self, two_versions: Stub) -> None:
        report = await report_of(two_versions)
        v1, v2 = report.versions
        assert report.baseline_version == 1
        assert not v1.HasField("difference_from_baseline")
        diff = v2.difference_from_baseline
        assert diff.difference == pytest.approx(0.75)
        assert diff.relative_difference == pytest.approx(3.0)
        assert diff.lower < diff.difference < diff.upper
        assert 0.0 < diff.p_value < 1.0
        assert not diff.sufficient_data
        assert "fewer than 10" in diff.note

    async def test_a_named_baseline_is_compared_even_when_not_reported(
        self, two_versions: Stub
    ) -> None:
        report = await report_of(two_versions, version=1, baseline_version=2)
        assert report.baseline_version == 2
        (v1,) = report.versions
        assert v1.difference_from_baseline.difference == pytest.approx(-0.75)

    async def test_an_unknown_baseline_is_not_found(self, two_versions: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await report_of(two_versions, baseline_version=7)
        assert error.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(error.value) == "VERSION_NOT_FOUND"

    async def test_time_to_conversion_from_entry_and_last_touch(self, two_versions: Stub) -> None:
        report = await report_of(two_versions)
        timing = report.time_to_conversion
        assert timing.conversions == 3
        day = 86_400
        assert timing.median_from_entry.seconds == 2 * day
        assert timing.p90_from_entry.seconds == 2 * day
        assert timing.median_from_last_touch.seconds == day


class TestHoldout:
    """Holdout enrollments are never credited, stay out of rates, and measure lift."""

    async def test_holdout_meets_the_goal_but_is_never_credited(self, tenant_stub: Stub) -> None:
        await define(tenant_stub)
        await enrol(tenant_stub, "h1", 1, converts=True, holdout=True)
        # Even a touchpoint does not make a holdout enrollment creditable.
        await tenant_stub.RecordTouchpoint(
            pb.RecordTouchpointRequest(
                touchpoint=touchpoint("t-h1", "h1", "welcome", "email-1", ago(days=2))
            )
        )
        await enrol(tenant_stub, "h2", 1, converts=False, holdout=True)
        for i in range(3):
            await enrol(tenant_stub, f"t{i}", 1, converts=i < 2)
        explained = await tenant_stub.ExplainGoalEvent(pb.ExplainGoalEventRequest(event_id="g-h1"))
        assert explained.explanation.outcome.journey_id == ""
        report = await report_of(tenant_stub)
        v1 = report.versions[0]
        assert (v1.entered, v1.goal_conversions) == (3, 2)
        assert report.goal_conversions == 2
        for lift in (v1.holdout, report.holdout):
            assert (lift.treated.successes, lift.treated.trials) == (2, 3)
            assert (lift.holdout.successes, lift.holdout.trials) == (1, 2)
            assert lift.lift.difference == pytest.approx(2 / 3 - 1 / 2)
            assert lift.lift.relative_difference == pytest.approx((2 / 3 - 1 / 2) / (1 / 2))
            assert not lift.lift.sufficient_data

    async def test_no_holdout_means_no_lift(self, tenant_stub: Stub) -> None:
        await define(tenant_stub)
        await enrol(tenant_stub, "c1", 1, converts=True)
        report = await report_of(tenant_stub)
        assert report.holdout.treated.successes == 1
        assert report.holdout.holdout.trials == 0
        assert not report.holdout.HasField("lift")

    async def test_holdout_flag_comes_back_and_is_part_of_the_idempotency_key(
        self, tenant_stub: Stub
    ) -> None:
        await define(tenant_stub)
        request = enter("e1", "c1", "welcome", ago(days=1), holdout=True)
        first = await tenant_stub.EnterJourney(request)
        assert first.enrollment.holdout
        assert (await tenant_stub.EnterJourney(request)).enrollment == first.enrollment
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await tenant_stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=1)))
        assert error.value.code() == grpc.StatusCode.ALREADY_EXISTS


class TestEmpty:
    """Nothing to count gives zeros, no-information intervals and no NaN."""

    async def test_a_journey_without_enrollments(self, tenant_stub: Stub) -> None:
        await define(tenant_stub)
        report = await report_of(tenant_stub)
        assert report.baseline_version == 0
        assert [(v.version, v.entered) for v in report.versions] == [(1, 0), (2, 0)]
        rate = report.versions[0].conversion_rate_entered
        assert (rate.rate, rate.lower, rate.upper) == (0.0, 0.0, 1.0)
        assert not report.versions[1].HasField("difference_from_baseline")
        assert report.time_to_conversion.conversions == 0
        assert not report.time_to_conversion.HasField("median_from_entry")
        no_nan(report)

    async def test_a_version_without_conversions(self, tenant_stub: Stub) -> None:
        await define(tenant_stub)
        await enrol(tenant_stub, "c1", 1, converts=False)
        await enrol(tenant_stub, "c2", 2, converts=False)
        report = await report_of(tenant_stub)
        v1, v2 = report.versions
        assert v1.conversion_rate_entered.rate == 0.0
        assert v2.difference_from_baseline.p_value == 1.0
        assert not v2.difference_from_baseline.HasField("relative_difference")
        no_nan(report)


class TestView:
    """REPORT_VIEW_BASIC computes the activity summary only; unknown views are refused."""

    async def test_basic_view_is_the_summary(self, tenant_stub: Stub) -> None:
        await define(tenant_stub)
        await enrol(tenant_stub, "c1", 1, converts=True)
        request = pb.GetJourneyReportRequest(journey_id="welcome", view=pb.REPORT_VIEW_BASIC)
        basic = (await tenant_stub.GetJourneyReport(request)).report
        full = await report_of(tenant_stub)
        assert (
            (basic.entered, basic.goal_conversions)
            == (full.entered, full.goal_conversions)
            == (
                1,
                1,
            )
        )
        assert [m.credited_conversions for m in basic.messages] == [1]
        assert not basic.versions and not basic.days and not basic.steps
        assert not basic.messages[0].credits
        assert full.versions and full.days and full.messages[0].credits

    async def test_an_unknown_view_is_invalid(self, tenant_stub: Stub) -> None:
        await define(tenant_stub)
        request = pb.GetJourneyReportRequest(journey_id="welcome", view=9)  # type: ignore[arg-type]
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await tenant_stub.GetJourneyReport(request)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
