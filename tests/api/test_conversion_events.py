"""Conversion events: late events move awards, and the stream resumes without gaps or repeats."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from journeys.conversions.v1 import conversions_pb2, events_pb2
from journeys.conversions.v1 import service_pb2 as pb

from tests.builders import ago, define_journey, enter, goal, goal_event, message, touchpoint

if TYPE_CHECKING:
    from tests.builders import Stub

AWARDED = conversions_pb2.CONVERSION_EVENT_TYPE_AWARDED
RETRACTED = conversions_pb2.CONVERSION_EVENT_TYPE_RETRACTED
UPDATED = conversions_pb2.CONVERSION_EVENT_TYPE_UPDATED


async def two_journeys_same_goal(stub: Stub) -> None:
    for journey_id, message_id in (("spring", "spring-email"), ("summer", "summer-email")):
        await stub.DefineJourney(
            define_journey(
                journey_id, [message(message_id)], goal("FORM_SUBMITTED", form_ids=["f"])
            )
        )
        await stub.EnterJourney(enter(f"{journey_id}-c1", "c1", journey_id, ago(days=10)))


async def read_events(stub: Stub, after: int, count: int) -> list[conversions_pb2.ConversionEvent]:
    """The next `count` events after a position, as a consumer would read them."""
    call = stub.StreamConversionEvents(pb.StreamConversionEventsRequest(after_position=after))
    events: list[conversions_pb2.ConversionEvent] = []
    async for item in call:
        events.append(item.event)
        if len(events) == count:
            call.cancel()
            break
    return events


class TestLateTouchpoint:
    """A touchpoint that arrives late but happened later moves the conversion to its journey."""

    async def test_late_touchpoint_moves_conversion_and_emits_retract_then_award(
        self, stub: Stub
    ) -> None:
        await two_journeys_same_goal(stub)
        await stub.RecordTouchpoint(
            pb.RecordTouchpointRequest(
                touchpoint=touchpoint("t-spring", "c1", "spring", "spring-email", ago(days=3))
            )
        )
        form = goal_event("g1", "c1", "FORM_SUBMITTED", ago(days=1), form_id="f")
        first = await stub.RecordGoalEvent(pb.RecordGoalEventRequest(goal_event=form))
        assert first.outcome.journey_id == "spring"

        # Happened after spring's touchpoint, before the goal event; arrives last.
        late = touchpoint("t-summer", "c1", "summer", "summer-email", ago(days=2))
        await stub.BatchRecordTouchpoints(pb.BatchRecordTouchpointsRequest(touchpoints=[late]))

        explained = await stub.ExplainGoalEvent(pb.ExplainGoalEventRequest(event_id="g1"))
        outcome = explained.explanation.outcome
        assert (outcome.journey_id, outcome.touchpoint_event_id) == ("summer", "t-summer")
        verdicts = {c.journey_id: c for c in explained.explanation.candidates}
        assert verdicts["spring"].verdict == conversions_pb2.CANDIDATE_VERDICT_BEATEN
        assert verdicts["spring"].beaten_by_journey_id == "summer"

        events = await read_events(stub, 0, 3)
        assert [(e.position, e.type, e.award.journey_id) for e in events] == [
            (1, AWARDED, "spring"),
            (2, RETRACTED, "spring"),
            (3, AWARDED, "summer"),
        ]
        spring = await stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="spring"))
        summer = await stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="summer"))
        assert (spring.report.goal_conversions, summer.report.goal_conversions) == (0, 1)
        assert spring.report.goal_events_credited_elsewhere == 1

    async def test_late_exit_before_goal_retracts_the_conversion(self, stub: Stub) -> None:
        await two_journeys_same_goal(stub)
        await stub.RecordTouchpoint(
            pb.RecordTouchpointRequest(
                touchpoint=touchpoint("t-spring", "c1", "spring", "spring-email", ago(days=3))
            )
        )
        form = goal_event("g1", "c1", "FORM_SUBMITTED", ago(days=1), form_id="f")
        await stub.RecordGoalEvent(pb.RecordGoalEventRequest(goal_event=form))
        await stub.ExitJourney(
            pb.ExitJourneyRequest(
                enrollment_id="spring-c1",
                exit_time=ago(days=2),
                exit_reason=events_pb2.EXIT_REASON_COMPLETED,
            )
        )
        explained = await stub.ExplainGoalEvent(pb.ExplainGoalEventRequest(event_id="g1"))
        assert explained.explanation.outcome.status == conversions_pb2.OUTCOME_STATUS_NOT_CONVERTED
        (spring,) = [c for c in explained.explanation.candidates if c.journey_id == "spring"]
        assert spring.verdict == conversions_pb2.CANDIDATE_VERDICT_NOT_ACTIVE
        events = await read_events(stub, 0, 2)
        assert [e.type for e in events] == [AWARDED, RETRACTED]


class TestStreamResume:
    """A consumer that reconnects with its last position misses nothing and sees nothing twice."""

    async def test_reconnect_from_last_position_continues_exactly(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("j", [message("m")], goal("ORDER_PLACED")))
        for n in range(6):
            contact = f"c{n}"
            await stub.EnterJourney(enter(f"e{n}", contact, "j", ago(days=5)))
            await stub.RecordTouchpoint(
                pb.RecordTouchpointRequest(
                    touchpoint=touchpoint(f"t{n}", contact, "j", "m", ago(days=4))
                )
            )
        orders = [goal_event(f"g{n}", f"c{n}", "ORDER_PLACED", ago(days=1)) for n in range(3)]
        await stub.BatchRecordGoalEvents(pb.BatchRecordGoalEventsRequest(goal_events=orders))

        first = await read_events(stub, 0, 2)
        assert [e.position for e in first] == [1, 2]

        # While the consumer is away, more conversions commit.
        more = [goal_event(f"g{n}", f"c{n}", "ORDER_PLACED", ago(days=1)) for n in range(3, 6)]
        await stub.BatchRecordGoalEvents(pb.BatchRecordGoalEventsRequest(goal_events=more))

        rest = await read_events(stub, first[-1].position, 4)
        assert [e.position for e in rest] == [3, 4, 5, 6]
        contacts = [e.award.contact_id for e in first + rest]
        assert sorted(contacts) == [f"c{n}" for n in range(6)]

    async def test_live_stream_receives_events_committed_after_it_started(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("j", [message("m")], goal("ORDER_PLACED")))
        await stub.EnterJourney(enter("e1", "c1", "j", ago(days=5)))
        await stub.RecordTouchpoint(
            pb.RecordTouchpointRequest(touchpoint=touchpoint("t1", "c1", "j", "m", ago(days=4)))
        )
        reader = asyncio.create_task(read_events(stub, 0, 1))
        await asyncio.sleep(0)  # the stream is open before the conversion commits
        await stub.RecordGoalEvent(
            pb.RecordGoalEventRequest(
                goal_event=goal_event("g1", "c1", "ORDER_PLACED", ago(hours=1))
            )
        )
        (event,) = await asyncio.wait_for(reader, timeout=30)
        assert (event.position, event.type, event.award.goal_event_id) == (1, AWARDED, "g1")

    async def test_streams_are_per_tenant(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("j", [message("m")], goal("ORDER_PLACED")))
        await stub.EnterJourney(enter("e1", "c1", "j", ago(days=5)))
        await stub.RecordTouchpoint(
            pb.RecordTouchpointRequest(touchpoint=touchpoint("t1", "c1", "j", "m", ago(days=4)))
        )
        await stub.RecordGoalEvent(
            pb.RecordGoalEventRequest(
                goal_event=goal_event("g1", "c1", "ORDER_PLACED", ago(hours=1))
            )
        )
        other = stub.StreamConversionEvents(
            pb.StreamConversionEventsRequest(after_position=0),
            metadata=(("x-tenant-id", "someone-else"),),
            timeout=2,
        )
        received = []
        try:
            async for item in other:
                received.append(item)
        except Exception as error:  # the deadline ends the empty stream
            assert "DEADLINE_EXCEEDED" in str(error)
        assert received == []
