"""Tenancy through the real server: the x-tenant-id header decides whose data a call sees, and
no call reads or changes another tenant's data."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from journeys.conversions.v1 import conversions_pb2, events_pb2
from journeys.conversions.v1 import service_pb2 as pb

from tests.builders import (
    ago,
    define_journey,
    enter,
    error_reason,
    exit_,
    goal,
    goal_event,
    message,
    tenant,
    touchpoint,
)

if TYPE_CHECKING:
    from tests.builders import Stub

A = tenant("acme")
B = tenant("globex")


async def converted_contact(stub: Stub, metadata: tuple[tuple[str, str]]) -> None:
    """In the caller's tenant: journey "welcome", c1 enrolled as e1, touched as t1, converted
    by goal event g1."""
    await stub.DefineJourney(
        define_journey("welcome", [message("email-1")], goal("ORDER_PLACED")), metadata=metadata
    )
    await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=3)), metadata=metadata)
    await stub.RecordTouchpoint(
        pb.RecordTouchpointRequest(
            touchpoint=touchpoint("t1", "c1", "welcome", "email-1", ago(days=2))
        ),
        metadata=metadata,
    )
    await stub.RecordGoalEvent(
        pb.RecordGoalEventRequest(goal_event=goal_event("g1", "c1", "ORDER_PLACED", ago(days=1))),
        metadata=metadata,
    )


async def report(stub: Stub, metadata: tuple[tuple[str, str]]) -> pb.GetJourneyReportResponse:
    return await stub.GetJourneyReport(
        pb.GetJourneyReportRequest(journey_id="welcome"), metadata=metadata
    )


class TestIsolation:
    """What one tenant writes, another tenant can neither see nor change."""

    async def test_another_tenants_journey_is_not_found(self, stub: Stub) -> None:
        await converted_contact(stub, A)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"), metadata=B)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(caught.value) == "JOURNEY_NOT_FOUND"
        assert list((await stub.ListJourneys(pb.ListJourneysRequest(), metadata=B)).journeys) == []
        for call in (
            stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="welcome"), metadata=B),
            stub.ListConversions(pb.ListConversionsRequest(journey_id="welcome"), metadata=B),
            stub.ListConversionAwards(
                pb.ListConversionAwardsRequest(journey_id="welcome"), metadata=B
            ),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as hidden:
                await call
            assert hidden.value.code() == grpc.StatusCode.NOT_FOUND

    async def test_another_tenants_enrollments_and_goal_events_are_not_found(
        self, stub: Stub
    ) -> None:
        await converted_contact(stub, A)
        for call in (
            stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id="e1"), metadata=B),
            stub.ExitJourney(exit_("e1", ago(hours=1)), metadata=B),
            stub.ExplainGoalEvent(pb.ExplainGoalEventRequest(event_id="g1"), metadata=B),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        still = await stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id="e1"), metadata=A)
        assert not still.enrollment.HasField("exit_time")

    async def test_another_tenant_cannot_touch_or_enter_a_foreign_journey(self, stub: Stub) -> None:
        await converted_contact(stub, A)
        with pytest.raises(grpc.aio.AioRpcError) as touching:
            await stub.RecordTouchpoint(
                pb.RecordTouchpointRequest(
                    touchpoint=touchpoint("t9", "c1", "welcome", "email-1", ago(hours=1))
                ),
                metadata=B,
            )
        assert touching.value.code() == grpc.StatusCode.NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as entering:
            await stub.EnterJourney(enter("e9", "c1", "welcome", ago(hours=1)), metadata=B)
        assert entering.value.code() == grpc.StatusCode.NOT_FOUND
        figures = (await report(stub, A)).report
        assert (figures.entered, figures.goal_conversions) == (1, 1)

    async def test_same_journey_id_in_another_tenant_reports_only_its_own_figures(
        self, stub: Stub
    ) -> None:
        await converted_contact(stub, A)
        await stub.DefineJourney(
            define_journey("welcome", [message("email-1")], goal("ORDER_PLACED")), metadata=B
        )
        mine = (await report(stub, A)).report
        theirs = (await report(stub, B)).report
        assert (mine.entered, mine.engaged, mine.goal_conversions) == (1, 1, 1)
        assert (theirs.entered, theirs.engaged, theirs.goal_conversions) == (0, 0, 0)
        assert [list(m.touchpoints) for m in theirs.messages] == [[]]

    async def test_same_ids_in_two_tenants_are_independent(self, stub: Stub) -> None:
        await converted_contact(stub, A)
        await stub.DefineJourney(
            define_journey("welcome", [message("email-1"), message("sms-1", "SMS")]), metadata=B
        )
        entered = await stub.EnterJourney(enter("e1", "c2", "welcome", ago(days=1)), metadata=B)
        assert entered.enrollment.contact_id == "c2"
        results = (
            await stub.BatchRecordTouchpoints(
                pb.BatchRecordTouchpointsRequest(
                    touchpoints=[
                        touchpoint("t1", "c2", "welcome", "sms-1", ago(hours=3), "SMS", "CLICKED")
                    ]
                ),
                metadata=B,
            )
        ).results
        assert [r.status for r in results] == [events_pb2.ITEM_STATUS_ACCEPTED]
        recorded = await stub.RecordGoalEvent(
            pb.RecordGoalEventRequest(
                goal_event=goal_event("g1", "c2", "FORM_SUBMITTED", ago(hours=1), form_id="f")
            ),
            metadata=B,
        )
        assert recorded.outcome.status == conversions_pb2.OUTCOME_STATUS_NOT_CONVERTED

        original = await stub.ExplainGoalEvent(
            pb.ExplainGoalEventRequest(event_id="g1"), metadata=A
        )
        assert original.explanation.goal_event.contact_id == "c1"
        assert original.explanation.outcome.status == conversions_pb2.OUTCOME_STATUS_CONVERTED
        a_enrollment = await stub.GetEnrollment(
            pb.GetEnrollmentRequest(enrollment_id="e1"), metadata=A
        )
        assert a_enrollment.enrollment.contact_id == "c1"
        a_journey = await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"), metadata=A)
        assert [m.message_id for m in a_journey.journey.versions[0].messages] == ["email-1"]

    async def test_conversion_event_stream_is_per_tenant(self, stub: Stub) -> None:
        await converted_contact(stub, A)
        await stub.DefineJourney(
            define_journey("other", [message("m")], goal("FORM_SUBMITTED", form_ids=["f"])),
            metadata=B,
        )
        await stub.EnterJourney(enter("b1", "c7", "other", ago(days=3)), metadata=B)
        await stub.RecordTouchpoint(
            pb.RecordTouchpointRequest(
                touchpoint=touchpoint("bt", "c7", "other", "m", ago(days=2))
            ),
            metadata=B,
        )
        await stub.RecordGoalEvent(
            pb.RecordGoalEventRequest(
                goal_event=goal_event("bg", "c7", "FORM_SUBMITTED", ago(days=1), form_id="f")
            ),
            metadata=B,
        )
        for metadata, journey_id in ((A, "welcome"), (B, "other")):
            stream = stub.StreamConversionEvents(
                pb.StreamConversionEventsRequest(after_position=0), metadata=metadata
            )
            first = await stream.read()
            stream.cancel()
            assert isinstance(first, pb.StreamConversionEventsResponse)
            assert first.event.position == 1
            assert first.event.award.journey_id == journey_id


class TestDefaultTenant:
    """Without the header a call acts for the default tenant, "default"."""

    async def test_calls_without_the_header_use_the_default_tenant(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
        named = await stub.GetJourney(
            pb.GetJourneyRequest(journey_id="welcome"), metadata=tenant("default")
        )
        assert named.journey.journey_id == "welcome"
        empty_header = await stub.GetJourney(
            pb.GetJourneyRequest(journey_id="welcome"), metadata=tenant("")
        )
        assert empty_header.journey == named.journey
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"), metadata=A)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    async def test_a_tenant_written_with_the_header_is_not_the_default(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]), metadata=A)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
