"""Idempotent writes through the real server: a repeat returns the first result and changes
nothing, a reused key with another payload is refused, and concurrent repeats on several
connections and replicas store exactly one row."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import grpc
import pytest
from journeys.conversions.v1 import conversions_pb2, events_pb2, report_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import config as config_module
from journey_conversions.server import App, build
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

T = TypeVar("T")
CONCURRENT = 20


async def report_of(stub: Stub, journey_id: str = "welcome") -> report_pb2.JourneyReport:
    """The journey's report up to a fixed end, so that two reads compare equal."""
    request = pb.GetJourneyReportRequest(journey_id=journey_id, end_time=ago(hours=-1))
    return (await stub.GetJourneyReport(request)).report


async def rows(app: App, table: str, where: str = "true", *args: object) -> int:
    """How many rows of a table the server's own database holds."""
    count = await app.pool.fetchval(f"select count(*) from {table} where {where}", *args)
    assert isinstance(count, int)
    return count


def refused_as_reused_key(error: grpc.aio.AioRpcError) -> bool:
    return (
        error.code() == grpc.StatusCode.ALREADY_EXISTS
        and error_reason(error) == "IDEMPOTENCY_KEY_REUSED"
    )


async def converting_journey(stub: Stub) -> None:
    """ "welcome": order goal, conversion "booked", contact c1 enrolled and touched."""
    await stub.DefineJourney(define_journey("welcome", [message("email-1")], goal("ORDER_PLACED")))
    await stub.DefineConversion(
        pb.DefineConversionRequest(
            request_id="def-booked",
            conversion=conversions_pb2.ConversionDefinition(
                conversion_id="booked", journey_id="welcome", name="Booked meeting"
            ),
        )
    )
    await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=3)))
    await stub.RecordTouchpoint(
        pb.RecordTouchpointRequest(
            touchpoint=touchpoint("t1", "c1", "welcome", "email-1", ago(days=2), action="CLICKED")
        )
    )


def order(event_id: str = "g1", product: str = "p1") -> pb.RecordGoalEventRequest:
    return pb.RecordGoalEventRequest(
        goal_event=goal_event(event_id, "c1", "ORDER_PLACED", ago(days=1), product_ids=[product])
    )


class TestRepeats:
    """A repeat with the same payload returns the first result; another payload is refused."""

    async def test_touchpoint_repeat_returns_first_result_and_changes_nothing(
        self, stub: Stub, app: App
    ) -> None:
        await converting_journey(stub)
        sent = touchpoint("t2", "c1", "welcome", "email-1", ago(hours=5), action="OPENED")
        first = await stub.RecordTouchpoint(pb.RecordTouchpointRequest(touchpoint=sent))
        before = await report_of(stub)
        again = await stub.RecordTouchpoint(pb.RecordTouchpointRequest(touchpoint=sent))
        assert again == first
        assert await report_of(stub) == before

        other = touchpoint("t2", "c1", "welcome", "email-1", ago(hours=5), action="CLICKED")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RecordTouchpoint(pb.RecordTouchpointRequest(touchpoint=other))
        assert refused_as_reused_key(caught.value)
        assert await report_of(stub) == before
        assert await rows(app, "touchpoints", "event_id = $1 and action = 2", "t2") == 1

    async def test_goal_event_repeat_returns_first_outcome_and_changes_nothing(
        self, stub: Stub, app: App
    ) -> None:
        await converting_journey(stub)
        first = await stub.RecordGoalEvent(order())
        assert first.outcome.status == conversions_pb2.OUTCOME_STATUS_CONVERTED
        before = await report_of(stub)
        assert before.goal_conversions == 1
        again = await stub.RecordGoalEvent(order())
        assert again == first
        assert await report_of(stub) == before

        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RecordGoalEvent(order(product="p2"))
        assert refused_as_reused_key(caught.value)
        assert await report_of(stub) == before
        assert await rows(app, "conversion_events") == 1

    async def test_enrollment_repeat_returns_first_result_and_changes_nothing(
        self, stub: Stub
    ) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
        first = await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=3)))
        again = await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=3)))
        assert again == first
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=2)))
        assert refused_as_reused_key(caught.value)
        with pytest.raises(grpc.aio.AioRpcError) as other_contact:
            await stub.EnterJourney(enter("e1", "c2", "welcome", ago(days=3)))
        assert refused_as_reused_key(other_contact.value)
        report = await report_of(stub)
        assert (report.entered, report.active) == (1, 1)

    async def test_define_journey_repeat_returns_first_result_and_changes_nothing(
        self, stub: Stub
    ) -> None:
        request = define_journey("welcome", [message("email-1")], goal("ORDER_PLACED"))
        first = await stub.DefineJourney(request)
        again = await stub.DefineJourney(request)
        assert again == first
        got = await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"))
        assert got.journey == first.journey, "update_time would have moved on a second write"

        changed = define_journey("welcome", [message("email-1")], goal("ORDER_UPDATED"))
        assert changed.request_id == request.request_id
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DefineJourney(changed)
        assert refused_as_reused_key(caught.value)
        got = await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"))
        assert got.journey == first.journey

    async def test_define_conversion_repeat_returns_first_result_and_changes_nothing(
        self, stub: Stub
    ) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
        request = pb.DefineConversionRequest(
            request_id="r1",
            conversion=conversions_pb2.ConversionDefinition(
                conversion_id="booked", journey_id="welcome", name="Booked meeting"
            ),
        )
        first = await stub.DefineConversion(request)
        again = await stub.DefineConversion(request)
        assert again == first
        assert again.conversion.revision == 1

        request.conversion.name = "Booked a call"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DefineConversion(request)
        assert refused_as_reused_key(caught.value)
        listed = await stub.ListConversions(pb.ListConversionsRequest(journey_id="welcome"))
        assert list(listed.conversions) == [first.conversion]

    async def test_mark_conversion_repeat_returns_first_award_and_changes_nothing(
        self, stub: Stub, app: App
    ) -> None:
        await converting_journey(stub)
        mark = pb.MarkConversionRequest(
            event_id="m1",
            enrollment_id="e1",
            conversion_id="booked",
            step_id="convert-1",
            mark_time=ago(days=1),
        )
        first = await stub.MarkConversion(mark)
        assert first.award.source == conversions_pb2.AWARD_SOURCE_CONVERT_STEP
        again = await stub.MarkConversion(mark)
        assert again == first

        mark.step_id = "convert-2"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.MarkConversion(mark)
        assert refused_as_reused_key(caught.value)
        (named,) = (await report_of(stub)).named_conversions
        assert named.count == 1
        assert await rows(app, "step_marks") == 1

    async def test_same_event_id_in_touchpoints_and_goal_events_is_independent(
        self, stub: Stub
    ) -> None:
        await converting_journey(stub)
        response = await stub.RecordGoalEvent(order(event_id="t1"))
        assert response.goal_event.event_id == "t1"


@pytest.fixture
async def replica(database_url: str, service_config: config_module.Config) -> AsyncIterator[App]:
    """A second server on the same database, as another replica would be."""
    running = await build(service_config, database_url, "127.0.0.1:0")
    yield running
    await running.stop(grace=1)


@pytest.fixture
async def stubs(app: App, replica: App) -> AsyncIterator[list[Stub]]:
    """Four connections: two to each replica."""
    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        for server in (app, app, replica, replica)
    ]
    yield [service_pb2_grpc.JourneyConversionsServiceStub(c) for c in channels]
    for opened in channels:
        await opened.close()


async def at_once(stubs: Sequence[Stub], call: Callable[[Stub], Awaitable[T]]) -> list[T]:
    """CONCURRENT calls spread over the connections, all in flight together."""
    return list(await asyncio.gather(*(call(stubs[n % len(stubs)]) for n in range(CONCURRENT))))


class TestConcurrentRepeats:
    """Identical writes racing on several connections and two replicas store one row."""

    async def test_concurrent_touchpoints_store_one_row(
        self, stub: Stub, stubs: list[Stub], app: App
    ) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
        request = pb.RecordTouchpointRequest(
            touchpoint=touchpoint("t1", "c1", "welcome", "email-1", ago(hours=1))
        )
        responses = await at_once(stubs, lambda s: s.RecordTouchpoint(request))
        assert all(r == responses[0] for r in responses)
        assert await rows(app, "touchpoints") == 1
        (email,) = (await report_of(stub)).messages
        assert [c.count for c in email.touchpoints] == [1]

    async def test_concurrent_goal_events_store_one_row_and_one_conversion(
        self, stub: Stub, stubs: list[Stub], app: App
    ) -> None:
        await converting_journey(stub)
        responses = await at_once(stubs, lambda s: s.RecordGoalEvent(order()))
        assert all(r == responses[0] for r in responses)
        assert responses[0].outcome.status == conversions_pb2.OUTCOME_STATUS_CONVERTED
        assert await rows(app, "goal_events") == 1
        assert await rows(app, "goal_outcomes") == 1
        assert await rows(app, "awards") == 1
        assert await rows(app, "conversion_events") == 1
        assert (await report_of(stub)).goal_conversions == 1

    async def test_concurrent_batches_accept_each_item_once(
        self, stub: Stub, stubs: list[Stub], app: App
    ) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
        request = pb.BatchRecordTouchpointsRequest(
            touchpoints=[
                touchpoint(f"t{n}", f"c{n % 3}", "welcome", "email-1", ago(minutes=n + 1))
                for n in range(10)
            ]
        )
        responses = await at_once(stubs, lambda s: s.BatchRecordTouchpoints(request))
        for index in range(10):
            statuses = [r.results[index].status for r in responses]
            assert sorted(statuses) == sorted(
                [events_pb2.ITEM_STATUS_ACCEPTED] + [events_pb2.ITEM_STATUS_DUPLICATE] * 19
            ), f"item {index}"
            assert {(r.results[index].index, r.results[index].event_id) for r in responses} == {
                (index, f"t{index}")
            }
        assert await rows(app, "touchpoints") == 10
        (email,) = (await report_of(stub)).messages
        assert [c.count for c in email.touchpoints] == [10]

    async def test_concurrent_define_journey_stores_one_journey(
        self, stub: Stub, stubs: list[Stub], app: App
    ) -> None:
        request = define_journey(
            "welcome", [message("email-1"), message("sms-1", "SMS")], goal("ORDER_PLACED")
        )
        responses = await at_once(stubs, lambda s: s.DefineJourney(request))
        assert all(r == responses[0] for r in responses)
        assert await rows(app, "journeys") == 1
        assert await rows(app, "journey_versions") == 1
        assert await rows(app, "journey_messages") == 2
        assert await rows(app, "journey_goals") == 1
        assert await rows(app, "requests") == 1
        got = await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"))
        assert got.journey == responses[0].journey

    async def test_concurrent_enrollments_store_one_enrollment(
        self, stub: Stub, stubs: list[Stub], app: App
    ) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
        responses = await at_once(
            stubs, lambda s: s.EnterJourney(enter("e1", "c1", "welcome", ago(days=1)))
        )
        assert all(r == responses[0] for r in responses)
        assert await rows(app, "enrollments") == 1

    async def test_concurrent_marks_store_one_award(
        self, stub: Stub, stubs: list[Stub], app: App
    ) -> None:
        await converting_journey(stub)
        mark = pb.MarkConversionRequest(
            event_id="m1", enrollment_id="e1", conversion_id="booked", mark_time=ago(days=1)
        )
        responses = await at_once(stubs, lambda s: s.MarkConversion(mark))
        assert all(r == responses[0] for r in responses)
        assert await rows(app, "awards", "conversion_id = 'booked'") == 1
        assert await rows(app, "conversion_events") == 1

    async def test_concurrent_first_definitions_under_different_request_ids_all_succeed(
        self, stub: Stub, stubs: list[Stub], app: App
    ) -> None:
        async def define(n: int) -> pb.DefineJourneyResponse:
            request = define_journey("welcome", [message("email-1")], request_id=f"r{n}")
            return await stubs[n % len(stubs)].DefineJourney(request)

        results = await asyncio.gather(
            *(define(n) for n in range(CONCURRENT)), return_exceptions=True
        )
        codes = [
            r.code() if isinstance(r, grpc.aio.AioRpcError) else grpc.StatusCode.OK for r in results
        ]
        assert codes == [grpc.StatusCode.OK] * CONCURRENT
        assert await rows(app, "journeys") == 1


class TestAcrossRestarts:
    """The first result of a key outlives the server that stored it."""

    async def test_repeat_on_a_new_server_returns_the_first_result(
        self, stub: Stub, app: App, database_url: str, service_config: config_module.Config
    ) -> None:
        await converting_journey(stub)
        first = await stub.RecordGoalEvent(order())
        definition = define_journey("other", [message("m")])
        defined = await stub.DefineJourney(definition)
        await app.stop(grace=1)

        restarted = await build(service_config, database_url, "127.0.0.1:0")
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{restarted.port}") as opened:
                fresh = service_pb2_grpc.JourneyConversionsServiceStub(opened)
                assert await fresh.RecordGoalEvent(order()) == first
                assert await fresh.DefineJourney(definition) == defined
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await fresh.RecordGoalEvent(order(product="p2"))
                assert refused_as_reused_key(caught.value)
                assert await rows(restarted, "goal_events") == 1
        finally:
            await restarted.stop(grace=1)
