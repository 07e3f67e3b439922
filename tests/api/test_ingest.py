"""Enrollments and touchpoints through the real server: what is stored, what is refused, and
how a batch reports each item on its own.

The tests share one server and database, each in a tenant of its own (see `stub`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from journeys.conversions.v1 import events_pb2
from journeys.conversions.v1 import service_pb2 as pb

from tests.builders import (
    ago,
    define_journey,
    enter,
    error_reason,
    exit_,
    field_violations,
    message,
    touchpoint,
)

if TYPE_CHECKING:
    from tests.builders import Stub


@pytest.fixture
def stub(tenant_stub: Stub) -> Stub:
    """This module's tests share one server, each in a tenant of its own."""
    return tenant_stub


async def touch_counts(stub: Stub, journey_id: str = "welcome") -> dict[tuple[str, str], int]:
    """(message_id, action name) -> touchpoints the journey report counts."""
    report = (await stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id=journey_id))).report
    return {
        (m.message_id, events_pb2.TouchpointAction.Name(c.action)): c.count
        for m in report.messages
        for c in m.touchpoints
    }


@pytest.fixture
async def welcome(stub: Stub) -> None:
    """Journey "welcome", version 1: an email, an SMS and a WhatsApp message."""
    await stub.DefineJourney(
        define_journey(
            "welcome", [message("email-1"), message("sms-1", "SMS"), message("wa-1", "WHATSAPP")]
        )
    )


@pytest.mark.usefixtures("welcome")
class TestEnrollments:
    """A contact enters a journey version, exits it, and may enter again as a new enrollment."""

    async def test_enter_exit_and_reenter_are_two_enrollments(self, stub: Stub) -> None:
        first = await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=3)))
        assert first.enrollment.enter_time == ago(days=3)
        assert not first.enrollment.HasField("exit_time")

        exited = await stub.ExitJourney(exit_("e1", ago(days=2)))
        assert exited.enrollment.exit_time == ago(days=2)
        assert exited.enrollment.exit_reason == events_pb2.EXIT_REASON_COMPLETED

        await stub.EnterJourney(enter("e2", "c1", "welcome", ago(days=1)))
        got1 = (await stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id="e1"))).enrollment
        got2 = (await stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id="e2"))).enrollment
        assert got1 == exited.enrollment
        assert (got2.contact_id, got2.journey_id, got2.version) == ("c1", "welcome", 1)
        assert not got2.HasField("exit_time")

        report = (
            await stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="welcome"))
        ).report
        assert (report.entered, report.active, report.exited) == (2, 2, 1)

    async def test_exit_before_entry_is_failed_precondition(self, stub: Stub) -> None:
        await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=1)))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ExitJourney(exit_("e1", ago(days=2)))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(caught.value) == "EXIT_BEFORE_ENTRY"
        got = await stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id="e1"))
        assert not got.enrollment.HasField("exit_time")

    async def test_exit_at_the_entry_time_is_accepted(self, stub: Stub) -> None:
        await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=1)))
        exited = await stub.ExitJourney(exit_("e1", ago(days=1)))
        assert exited.enrollment.exit_time == ago(days=1)

    async def test_second_exit_at_another_time_is_already_exists(self, stub: Stub) -> None:
        await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=3)))
        await stub.ExitJourney(exit_("e1", ago(days=2)))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ExitJourney(exit_("e1", ago(days=1)))
        assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error_reason(caught.value) == "ENROLLMENT_ALREADY_EXITED"

    async def test_second_exit_with_another_reason_is_already_exists(self, stub: Stub) -> None:
        await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=3)))
        await stub.ExitJourney(exit_("e1", ago(days=2)))
        other = exit_("e1", ago(days=2))
        other.exit_reason = events_pb2.EXIT_REASON_REMOVED
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ExitJourney(other)
        assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS

    async def test_repeated_identical_exit_returns_the_same_result(self, stub: Stub) -> None:
        await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=3)))
        first = await stub.ExitJourney(exit_("e1", ago(days=2)))
        again = await stub.ExitJourney(exit_("e1", ago(days=2)))
        assert again == first

    async def test_enter_of_unknown_journey_or_version_is_not_found(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as journey:
            await stub.EnterJourney(enter("e1", "c1", "nowhere", ago(days=1)))
        assert journey.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(journey.value) == "JOURNEY_NOT_FOUND"
        with pytest.raises(grpc.aio.AioRpcError) as version:
            await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=1), version=2))
        assert version.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(version.value) == "VERSION_NOT_FOUND"

    async def test_unknown_enrollment_is_not_found_for_exit_and_get(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as exiting:
            await stub.ExitJourney(exit_("nobody", ago(days=1)))
        assert exiting.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(exiting.value) == "ENROLLMENT_NOT_FOUND"
        with pytest.raises(grpc.aio.AioRpcError) as getting:
            await stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id="nobody"))
        assert getting.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(getting.value) == "ENROLLMENT_NOT_FOUND"


def record(tp: events_pb2.Touchpoint) -> pb.RecordTouchpointRequest:
    return pb.RecordTouchpointRequest(touchpoint=tp)


@pytest.mark.usefixtures("welcome")
class TestSingleTouchpoint:
    """RecordTouchpoint stores one touchpoint of a journey message, or says precisely why not."""

    async def test_touchpoint_is_stored_and_returned(self, stub: Stub) -> None:
        sent = touchpoint("t1", "c1", "welcome", "email-1", ago(hours=2), action="OPENED")
        response = await stub.RecordTouchpoint(record(sent))
        assert response.touchpoint == sent
        assert await touch_counts(stub) == {("email-1", "TOUCHPOINT_ACTION_OPENED"): 1}

    async def test_touchpoint_without_version_is_accepted(self, stub: Stub) -> None:
        sent = touchpoint("t1", "c1", "welcome", "wa-1", ago(hours=2), "WHATSAPP", "READ", 0)
        response = await stub.RecordTouchpoint(record(sent))
        assert response.touchpoint.version == 0

    async def test_unknown_journey_is_not_found(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RecordTouchpoint(
                record(touchpoint("t1", "c1", "nowhere", "email-1", ago(hours=1)))
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(caught.value) == "JOURNEY_NOT_FOUND"

    async def test_unknown_message_is_not_found(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RecordTouchpoint(
                record(touchpoint("t1", "c1", "welcome", "email-9", ago(hours=1)))
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(caught.value) == "MESSAGE_NOT_FOUND"

    async def test_message_not_in_the_given_version_is_not_found(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RecordTouchpoint(
                record(touchpoint("t1", "c1", "welcome", "email-1", ago(hours=1), version=2))
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(caught.value) == "MESSAGE_NOT_IN_VERSION"

    async def test_channel_other_than_the_messages_is_invalid(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RecordTouchpoint(
                record(touchpoint("t1", "c1", "welcome", "email-1", ago(hours=1), "SMS"))
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert await touch_counts(stub) == {}

    async def test_channel_mismatch_names_the_full_field_path(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RecordTouchpoint(
                record(touchpoint("t1", "c1", "welcome", "email-1", ago(hours=1), "SMS"))
            )
        assert list(field_violations(caught.value)) == ["touchpoint.channel"]

    @pytest.mark.parametrize(
        ("channel_name", "message_id", "action"),
        [
            ("SMS", "sms-1", "OPENED"),
            ("EMAIL", "email-1", "READ"),
            ("WHATSAPP", "wa-1", "OPENED"),
        ],
    )
    async def test_action_not_allowed_for_the_channel_is_invalid(
        self, stub: Stub, channel_name: str, message_id: str, action: str
    ) -> None:
        sent = touchpoint("t1", "c1", "welcome", message_id, ago(hours=1), channel_name, action)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RecordTouchpoint(record(sent))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(caught.value)) == ["touchpoint.action"]

    async def test_machine_generated_click_is_invalid(self, stub: Stub) -> None:
        sent = touchpoint(
            "t1", "c1", "welcome", "email-1", ago(hours=1), action="CLICKED", machine_generated=True
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RecordTouchpoint(record(sent))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(caught.value)) == ["touchpoint.machine_generated"]

    async def test_machine_generated_open_is_stored(self, stub: Stub) -> None:
        sent = touchpoint(
            "t1", "c1", "welcome", "email-1", ago(hours=1), action="OPENED", machine_generated=True
        )
        response = await stub.RecordTouchpoint(record(sent))
        assert response.touchpoint.machine_generated
        assert await touch_counts(stub) == {("email-1", "TOUCHPOINT_ACTION_OPENED"): 1}


def batch(*items: events_pb2.Touchpoint) -> pb.BatchRecordTouchpointsRequest:
    return pb.BatchRecordTouchpointsRequest(touchpoints=items)


@pytest.mark.usefixtures("welcome")
class TestBatchTouchpoints:
    """A batch answers each item on its own, in order, and a bad item does not sink the rest."""

    async def test_mixed_batch_gives_one_result_per_item_in_order(self, stub: Stub) -> None:
        await stub.RecordTouchpoint(
            record(touchpoint("t0", "c1", "welcome", "email-1", ago(days=1)))
        )
        items = [
            touchpoint("t1", "c1", "welcome", "email-1", ago(hours=3), action="CLICKED"),
            touchpoint("t0", "c1", "welcome", "email-1", ago(days=1)),
            touchpoint("t2", "c1", "welcome", "email-1", ago(hours=3), action="REPLIED"),
            touchpoint("t3", "c1", "nowhere", "email-1", ago(hours=3)),
            touchpoint("t4", "c1", "welcome", "email-9", ago(hours=3)),
            touchpoint("t5", "c2", "welcome", "sms-1", ago(hours=2), "SMS", "CLICKED"),
            touchpoint("t6", "c2", "welcome", "sms-1", ago(hours=2), "EMAIL"),
            touchpoint("t1", "c1", "welcome", "email-1", ago(hours=3), action="CLICKED"),
            touchpoint("t0", "c1", "welcome", "email-1", ago(hours=5)),
        ]
        results = (await stub.BatchRecordTouchpoints(batch(*items))).results

        assert [(r.index, r.event_id) for r in results] == [
            (i, t.event_id) for i, t in enumerate(items)
        ]
        assert [events_pb2.ItemStatus.Name(r.status) for r in results] == [
            "ITEM_STATUS_ACCEPTED",
            "ITEM_STATUS_DUPLICATE",
            "ITEM_STATUS_REJECTED",
            "ITEM_STATUS_REJECTED",
            "ITEM_STATUS_REJECTED",
            "ITEM_STATUS_ACCEPTED",
            "ITEM_STATUS_REJECTED",
            "ITEM_STATUS_DUPLICATE",
            "ITEM_STATUS_REJECTED",
        ]
        assert [r.HasField("error") for r in results] == [
            r.status == events_pb2.ITEM_STATUS_REJECTED for r in results
        ]
        invalid = results[2].error
        assert (invalid.code, invalid.reason) == ("INVALID_ARGUMENT", "INVALID_ARGUMENT")
        assert [v.field for v in invalid.field_violations] == ["touchpoints[2].action"]
        assert invalid.message
        assert (results[3].error.code, results[3].error.reason) == (
            "NOT_FOUND",
            "JOURNEY_NOT_FOUND",
        )
        assert (results[4].error.code, results[4].error.reason) == (
            "NOT_FOUND",
            "MESSAGE_NOT_FOUND",
        )
        assert results[6].error.code == "INVALID_ARGUMENT"
        assert (results[8].error.code, results[8].error.reason) == (
            "ALREADY_EXISTS",
            "IDEMPOTENCY_KEY_REUSED",
        )

        assert await touch_counts(stub) == {
            ("email-1", "TOUCHPOINT_ACTION_DELIVERED"): 1,
            ("email-1", "TOUCHPOINT_ACTION_CLICKED"): 1,
            ("sms-1", "TOUCHPOINT_ACTION_CLICKED"): 1,
        }

    async def test_invalid_item_reports_every_wrong_field_with_its_index(self, stub: Stub) -> None:
        bad = events_pb2.Touchpoint(event_id="t9", journey_id="welcome", message_id="email-1")
        results = (
            await stub.BatchRecordTouchpoints(
                batch(touchpoint("t1", "c1", "welcome", "email-1", ago(hours=1)), bad)
            )
        ).results
        assert [r.status for r in results] == [
            events_pb2.ITEM_STATUS_ACCEPTED,
            events_pb2.ITEM_STATUS_REJECTED,
        ]
        assert {v.field for v in results[1].error.field_violations} == {
            "touchpoints[1].contact_id",
            "touchpoints[1].channel",
            "touchpoints[1].action",
            "touchpoints[1].occur_time",
        }

    async def test_batch_of_only_bad_items_stores_nothing(self, stub: Stub) -> None:
        results = (
            await stub.BatchRecordTouchpoints(
                batch(
                    touchpoint("t1", "c1", "nowhere", "email-1", ago(hours=1)),
                    touchpoint("t2", "c1", "welcome", "email-1", ago(hours=1), action="READ"),
                )
            )
        ).results
        assert [r.status for r in results] == [events_pb2.ITEM_STATUS_REJECTED] * 2
        assert await touch_counts(stub) == {}

    async def test_channel_mismatch_names_the_item_index(self, stub: Stub) -> None:
        results = (
            await stub.BatchRecordTouchpoints(
                batch(
                    touchpoint("t1", "c1", "welcome", "email-1", ago(hours=1)),
                    touchpoint("t2", "c1", "welcome", "email-1", ago(hours=1), "SMS"),
                )
            )
        ).results
        assert [v.field for v in results[1].error.field_violations] == ["touchpoints[1].channel"]

    async def test_full_batch_of_1000_is_accepted(self, stub: Stub) -> None:
        items = [
            touchpoint(f"t{n}", f"c{n % 37}", "welcome", "email-1", ago(minutes=n))
            for n in range(1000)
        ]
        results = (await stub.BatchRecordTouchpoints(batch(*items))).results
        assert {r.status for r in results} == {events_pb2.ITEM_STATUS_ACCEPTED}
        assert await touch_counts(stub) == {("email-1", "TOUCHPOINT_ACTION_DELIVERED"): 1000}

    @pytest.mark.parametrize("size", [0, 1001])
    async def test_empty_or_oversized_batch_is_invalid_as_a_whole(
        self, stub: Stub, size: int
    ) -> None:
        items = [
            touchpoint(f"t{n}", "c1", "welcome", "email-1", ago(minutes=n)) for n in range(size)
        ]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.BatchRecordTouchpoints(batch(*items))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(caught.value)) == ["touchpoints"]
        assert await touch_counts(stub) == {}
