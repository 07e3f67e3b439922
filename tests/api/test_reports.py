"""The journey report, first cut, through the real server: participation (entered, active,
exited, engaged) and touchpoints per message and action, over a time range and per version."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import timestamp_pb2
from journeys.conversions.v1 import events_pb2, report_pb2
from journeys.conversions.v1 import service_pb2 as pb

from tests.builders import (
    NOW,
    ago,
    define_journey,
    enter,
    error_reason,
    exit_,
    message,
    touchpoint,
    ts,
)

if TYPE_CHECKING:
    from tests.builders import Stub


async def get_report(
    stub: Stub,
    journey_id: str = "welcome",
    version: int = 0,
    start: timestamp_pb2.Timestamp | None = None,
    end: timestamp_pb2.Timestamp | None = None,
) -> report_pb2.JourneyReport:
    request = pb.GetJourneyReportRequest(
        journey_id=journey_id, version=version, start_time=start, end_time=end
    )
    return (await stub.GetJourneyReport(request)).report


def participation(report: report_pb2.JourneyReport) -> dict[str, int]:
    return {
        "entered": report.entered,
        "active": report.active,
        "exited": report.exited,
        "engaged": report.engaged,
    }


def touches(report: report_pb2.JourneyReport) -> dict[str, dict[str, int]]:
    """message -> action name -> count, for every message the report lists."""
    return {
        m.message_id: {
            events_pb2.TouchpointAction.Name(c.action).removeprefix("TOUCHPOINT_ACTION_"): c.count
            for c in m.touchpoints
        }
        for m in report.messages
    }


async def touch(stub: Stub, tp: events_pb2.Touchpoint) -> None:
    await stub.RecordTouchpoint(pb.RecordTouchpointRequest(touchpoint=tp))


@pytest.fixture
async def two_versions(stub: Stub) -> None:
    """Version 1 (email-1, sms-1) and version 2 (email-1, email-2) of "welcome", and:

    e1: c1 in v1 from 10 to 6 days ago, email-1 delivered (9 d) and opened (8 d).
    e2: c2 in v1 from 5 days ago, sms-1 clicked (4 d).
    e3: c3 in v2 from 3 to 1 days ago, email-2 clicked (2 d).
    e4: c4 in v2 from 2 days ago, email-1 delivered (2.5 d) before it entered.
    c5, never enrolled: email-1 delivered (1 d) with version 0 (unknown to the gateway).
    """
    await stub.DefineJourney(
        define_journey("welcome", [message("email-1"), message("sms-1", "SMS")])
    )
    await stub.DefineJourney(
        define_journey("welcome", [message("email-1"), message("email-2")], version=2)
    )
    await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=10)))
    await stub.ExitJourney(exit_("e1", ago(days=6)))
    await stub.EnterJourney(enter("e2", "c2", "welcome", ago(days=5)))
    await stub.EnterJourney(enter("e3", "c3", "welcome", ago(days=3), version=2))
    await stub.ExitJourney(exit_("e3", ago(days=1)))
    await stub.EnterJourney(enter("e4", "c4", "welcome", ago(days=2), version=2))
    for tp in (
        touchpoint("t1", "c1", "welcome", "email-1", ago(days=9)),
        touchpoint("t2", "c1", "welcome", "email-1", ago(days=8), action="OPENED"),
        touchpoint("t3", "c2", "welcome", "sms-1", ago(days=4), "SMS", "CLICKED"),
        touchpoint("t4", "c3", "welcome", "email-2", ago(days=2), action="CLICKED", version=2),
        touchpoint("t5", "c4", "welcome", "email-1", ago(days=2.5), version=2),
        touchpoint("t6", "c5", "welcome", "email-1", ago(days=1), version=0),
    ):
        await touch(stub, tp)


@pytest.mark.usefixtures("two_versions")
class TestParticipationAndTouchpoints:
    """Entered, active, exited and engaged count enrollments; touchpoints count per message."""

    async def test_whole_history_of_all_versions(self, stub: Stub) -> None:
        report = await get_report(stub)
        assert (report.journey_id, report.version) == ("welcome", 0)
        assert participation(report) == {"entered": 4, "active": 4, "exited": 2, "engaged": 3}
        assert touches(report) == {
            "email-1": {"DELIVERED": 3, "OPENED": 1},
            "email-2": {"CLICKED": 1},
            "sms-1": {"CLICKED": 1},
        }
        channels = {m.message_id: m.channel for m in report.messages}
        assert channels["sms-1"] != channels["email-1"]

    async def test_time_range_counts_what_happened_inside_it(self, stub: Stub) -> None:
        start, end = ago(days=7), ago(days=2.5)
        report = await get_report(stub, start=start, end=end)
        assert (report.start_time, report.end_time) == (start, end)
        # e2 and e3 entered; e1 (exited 6 d), e2 and e3 were in; only e1 exited; only e2 was
        # touched while in; e4's touch at 2.5 d sits on the exclusive end.
        assert participation(report) == {"entered": 2, "active": 3, "exited": 1, "engaged": 1}
        assert touches(report) == {"email-1": {}, "email-2": {}, "sms-1": {"CLICKED": 1}}

    async def test_start_is_inclusive_and_end_is_exclusive(self, stub: Stub) -> None:
        at_entry = await get_report(stub, start=ago(days=10), end=ago(days=9))
        assert at_entry.entered == 1
        before_entry = await get_report(stub, start=ago(days=11), end=ago(days=10))
        assert (before_entry.entered, before_entry.active) == (0, 0)

    async def test_version_one_counts_its_enrollments_and_messages(self, stub: Stub) -> None:
        report = await get_report(stub, version=1)
        assert report.version == 1
        assert participation(report) == {"entered": 2, "active": 2, "exited": 1, "engaged": 2}
        # email-1: t1 (v1) and t6 (version unknown, email-1 is in v1).
        assert touches(report) == {
            "email-1": {"DELIVERED": 2, "OPENED": 1},
            "sms-1": {"CLICKED": 1},
        }

    async def test_version_two_counts_its_enrollments_and_messages(self, stub: Stub) -> None:
        report = await get_report(stub, version=2)
        # e4's only touchpoint came before it entered: not engaged.
        assert participation(report) == {"entered": 2, "active": 2, "exited": 1, "engaged": 1}
        assert touches(report) == {"email-1": {"DELIVERED": 2}, "email-2": {"CLICKED": 1}}

    async def test_unknown_version_or_journey_is_not_found(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as version:
            await get_report(stub, version=3)
        assert version.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(version.value) == "VERSION_NOT_FOUND"
        with pytest.raises(grpc.aio.AioRpcError) as journey:
            await get_report(stub, journey_id="nowhere")
        assert journey.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(journey.value) == "JOURNEY_NOT_FOUND"


class TestMachineOpens:
    """Machine-generated opens are stored and counted, and engage no one when excluded."""

    @pytest.mark.parametrize(
        ("exclude", "engaged"), [(True, 0), (False, 1)], ids=["excluded", "included"]
    )
    async def test_machine_open_engages_only_when_the_journey_counts_it(
        self, stub: Stub, exclude: bool, engaged: int
    ) -> None:
        await stub.DefineJourney(
            define_journey("welcome", [message("email-1")], exclude_machine_opens=exclude)
        )
        await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=2)))
        await touch(
            stub,
            touchpoint(
                "t1",
                "c1",
                "welcome",
                "email-1",
                ago(days=1),
                action="OPENED",
                machine_generated=True,
            ),
        )
        report = await get_report(stub)
        assert report.engaged == engaged
        assert report.versions[0].engaged == engaged
        assert touches(report) == {"email-1": {"OPENED": 1}}

    async def test_human_touch_engages_despite_excluded_machine_opens(self, stub: Stub) -> None:
        await stub.DefineJourney(
            define_journey("welcome", [message("email-1")], exclude_machine_opens=True)
        )
        await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=2)))
        await stub.EnterJourney(enter("e2", "c2", "welcome", ago(days=2)))
        await touch(
            stub,
            touchpoint(
                "t1",
                "c1",
                "welcome",
                "email-1",
                ago(days=1),
                action="OPENED",
                machine_generated=True,
            ),
        )
        await touch(
            stub, touchpoint("t2", "c2", "welcome", "email-1", ago(days=1), action="OPENED")
        )
        report = await get_report(stub)
        assert (report.entered, report.engaged) == (2, 1)
        assert (report.versions[0].entered, report.versions[0].engaged) == (2, 1)
        assert touches(report) == {"email-1": {"OPENED": 2}}


# Entries (and one exit) at these hours of one UTC day three days ago; a range starting at each
# START_HOURS hour of that day counts those at or after it. Starts in the day's first half and
# in its second half: the report takes that day's counts as in the range or before it, and
# reads the enrollments between the start and the day's edge itself (ReportQuery.count_edge).
HOUR = timedelta(hours=1)
ENTRY_HOURS = (3, 10, 14, 21)
START_HOURS = (0, 2, 5, 11, 12, 13, 20, 22)


@pytest.mark.parametrize("start_hour", START_HOURS)
async def test_a_range_starting_within_a_day_counts_that_day_by_the_hour(
    stub: Stub, start_hour: int
) -> None:
    day = (NOW - timedelta(days=3)).astimezone(UTC).replace(hour=0, minute=0, second=0)
    day = day.replace(microsecond=0)
    await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
    for hour in ENTRY_HOURS:
        await stub.EnterJourney(enter(f"e{hour}", f"c{hour}", "welcome", ts(day + hour * HOUR)))
    await stub.ExitJourney(exit_("e3", ts(day + 4 * HOUR)))
    start = day + start_hour * HOUR
    report = await get_report(stub, start=ts(start))
    entered = sum(hour >= start_hour for hour in ENTRY_HOURS)
    exited = int(start_hour <= 4)
    assert participation(report) == {
        "entered": entered,
        "active": len(ENTRY_HOURS) - (1 - exited),
        "exited": exited,
        "engaged": 0,
    }
    assert report.versions[0].entered == entered
