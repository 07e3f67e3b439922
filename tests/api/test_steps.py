"""Named conversions: Convert step, Evaluate-goal step and triggers, one award per enrollment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc
import pytest
from journeys.conversions.v1 import conversions_pb2, journey_pb2
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


async def journey_with_conversions(stub: Stub, journey_id: str = "trial") -> None:
    await stub.DefineJourney(
        define_journey(
            journey_id, [message(f"{journey_id}-email")], goal("FORM_SUBMITTED", form_ids=["demo"])
        )
    )
    for conversion_id, name, on_goal, trigger in (
        ("booked", "Booked meeting", True, None),
        ("paid", "Started paid plan", False, goal("ORDER_PLACED", product_ids=["plan"])),
    ):
        definition = conversions_pb2.ConversionDefinition(
            conversion_id=conversion_id, journey_id=journey_id, name=name, award_on_goal=on_goal
        )
        if trigger is not None:
            definition.trigger.CopyFrom(trigger)
        await stub.DefineConversion(
            pb.DefineConversionRequest(
                request_id=f"def-{journey_id}-{conversion_id}", conversion=definition
            )
        )
    await stub.EnterJourney(enter(f"{journey_id}-e1", "c1", journey_id, ago(days=5)))


async def touch(stub: Stub, journey_id: str, event_id: str, days_ago: float) -> None:
    await stub.RecordTouchpoint(
        pb.RecordTouchpointRequest(
            touchpoint=touchpoint(
                event_id, "c1", journey_id, f"{journey_id}-email", ago(days=days_ago)
            )
        )
    )


class TestConvertStep:
    """A Convert step awards exactly the named conversion, once per enrollment."""

    async def test_mark_awards_only_that_conversion(self, stub: Stub) -> None:
        await journey_with_conversions(stub)
        reply = await stub.MarkConversion(
            pb.MarkConversionRequest(
                event_id="m1",
                enrollment_id="trial-e1",
                conversion_id="booked",
                step_id="s9",
                mark_time=ago(days=1),
            )
        )
        assert (reply.award.conversion_id, reply.award.step_id) == ("booked", "s9")
        assert reply.award.source == conversions_pb2.AWARD_SOURCE_CONVERT_STEP
        awards = await stub.ListConversionAwards(pb.ListConversionAwardsRequest(journey_id="trial"))
        assert [a.conversion_id for a in awards.awards] == ["booked"]

    async def test_second_mark_of_the_same_conversion_keeps_the_first_award(
        self, stub: Stub
    ) -> None:
        await journey_with_conversions(stub)
        first = await stub.MarkConversion(
            pb.MarkConversionRequest(
                event_id="m1",
                enrollment_id="trial-e1",
                conversion_id="booked",
                step_id="s1",
                mark_time=ago(days=2),
            )
        )
        second = await stub.MarkConversion(
            pb.MarkConversionRequest(
                event_id="m2",
                enrollment_id="trial-e1",
                conversion_id="booked",
                step_id="s2",
                mark_time=ago(days=1),
            )
        )
        assert second.award == first.award
        report = await stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="trial"))
        counts = {n.conversion_id: n.count for n in report.report.named_conversions}
        assert counts == {"booked": 1, "paid": 0}

    async def test_unknown_conversion_is_not_found(self, stub: Stub) -> None:
        await journey_with_conversions(stub)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.MarkConversion(
                pb.MarkConversionRequest(
                    event_id="m1",
                    enrollment_id="trial-e1",
                    conversion_id="nope",
                    mark_time=ago(days=1),
                )
            )
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(caught.value) == "CONVERSION_NOT_FOUND"

    async def test_mark_before_entry_is_a_failed_precondition(self, stub: Stub) -> None:
        await journey_with_conversions(stub)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.MarkConversion(
                pb.MarkConversionRequest(
                    event_id="m1",
                    enrollment_id="trial-e1",
                    conversion_id="booked",
                    mark_time=ago(days=6),
                )
            )
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


class TestEvaluateGoalStep:
    """Evaluate-goal says whether the goal was met and where its conversion went, separately."""

    async def test_goal_not_met_awards_nothing(self, stub: Stub) -> None:
        await journey_with_conversions(stub)
        reply = await stub.EvaluateGoal(
            pb.EvaluateGoalRequest(
                event_id="v1", enrollment_id="trial-e1", evaluate_time=ago(hours=1)
            )
        )
        assert (reply.goal_met, reply.credit, list(reply.awards)) == (
            False,
            pb.GOAL_CREDIT_NOT_MET,
            [],
        )

    async def test_goal_met_and_credited_here_awards_tied_conversions(self, stub: Stub) -> None:
        await journey_with_conversions(stub)
        await touch(stub, "trial", "t1", 3)
        form = goal_event("g1", "c1", "FORM_SUBMITTED", ago(days=1), form_id="demo")
        await stub.RecordGoalEvent(pb.RecordGoalEventRequest(goal_event=form))
        reply = await stub.EvaluateGoal(
            pb.EvaluateGoalRequest(
                event_id="v1", enrollment_id="trial-e1", step_id="eval", evaluate_time=ago(hours=1)
            )
        )
        assert (reply.goal_met, reply.goal_event_id, reply.credit) == (
            True,
            "g1",
            pb.GOAL_CREDIT_THIS_JOURNEY,
        )
        assert [(a.conversion_id, a.source) for a in reply.awards] == [
            ("booked", conversions_pb2.AWARD_SOURCE_EVALUATE_GOAL_STEP)
        ]
        report = await stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="trial"))
        assert report.report.goal_conversions == 1  # the step never adds a second goal conversion

    async def test_goal_met_but_credited_to_another_journey(self, stub: Stub) -> None:
        await journey_with_conversions(stub, "trial")
        await journey_with_conversions(stub, "rival")
        await touch(stub, "trial", "t1", 3)
        await touch(stub, "rival", "t2", 2)  # later: the rival wins the goal conversion
        form = goal_event("g1", "c1", "FORM_SUBMITTED", ago(days=1), form_id="demo")
        await stub.RecordGoalEvent(pb.RecordGoalEventRequest(goal_event=form))
        reply = await stub.EvaluateGoal(
            pb.EvaluateGoalRequest(
                event_id="v1", enrollment_id="trial-e1", evaluate_time=ago(hours=1)
            )
        )
        assert (reply.goal_met, reply.credit, reply.credited_journey_id) == (
            True,
            pb.GOAL_CREDIT_OTHER_JOURNEY,
            "rival",
        )
        assert [a.conversion_id for a in reply.awards] == ["booked"]

    async def test_repeat_returns_the_first_answer(self, stub: Stub) -> None:
        await journey_with_conversions(stub)
        request = pb.EvaluateGoalRequest(
            event_id="v1", enrollment_id="trial-e1", evaluate_time=ago(hours=1)
        )
        first = await stub.EvaluateGoal(request)
        await touch(stub, "trial", "t1", 3)
        form = goal_event("g1", "c1", "FORM_SUBMITTED", ago(hours=2), form_id="demo")
        await stub.RecordGoalEvent(pb.RecordGoalEventRequest(goal_event=form))
        assert await stub.EvaluateGoal(request) == first


class TestTrigger:
    """A goal event matching a conversion's trigger awards it, under the goal's eligibility."""

    async def test_matching_goal_event_awards_the_triggered_conversion(self, stub: Stub) -> None:
        await journey_with_conversions(stub)
        await touch(stub, "trial", "t1", 3)
        order = goal_event("o1", "c1", "ORDER_PLACED", ago(days=1), product_ids=["plan", "addon"])
        await stub.RecordGoalEvent(pb.RecordGoalEventRequest(goal_event=order))
        awards = await stub.ListConversionAwards(pb.ListConversionAwardsRequest(journey_id="trial"))
        assert [(a.conversion_id, a.source, a.message_id) for a in awards.awards] == [
            ("paid", conversions_pb2.AWARD_SOURCE_TRIGGER, "trial-email")
        ]

    async def test_trigger_without_touchpoint_in_window_awards_nothing(self, stub: Stub) -> None:
        await journey_with_conversions(stub)
        order = goal_event("o1", "c1", "ORDER_PLACED", ago(days=1), product_ids=["plan"])
        await stub.RecordGoalEvent(pb.RecordGoalEventRequest(goal_event=order))
        awards = await stub.ListConversionAwards(pb.ListConversionAwardsRequest(journey_id="trial"))
        assert list(awards.awards) == []


class TestDefinitionChange:
    """Changing a conversion's value updates its open awards, which keep their conversion."""

    async def test_new_value_updates_the_award_and_emits_updated(self, stub: Stub) -> None:
        await journey_with_conversions(stub)
        await stub.MarkConversion(
            pb.MarkConversionRequest(
                event_id="m1",
                enrollment_id="trial-e1",
                conversion_id="booked",
                mark_time=ago(days=1),
            )
        )
        changed = conversions_pb2.ConversionDefinition(
            conversion_id="booked",
            journey_id="trial",
            name="Booked meeting",
            award_on_goal=True,
            value=journey_pb2.Money(currency_code="EUR", amount_micros=50_000_000),
        )
        reply = await stub.DefineConversion(
            pb.DefineConversionRequest(request_id="redefine", conversion=changed)
        )
        assert reply.conversion.revision == 2
        awards = await stub.ListConversionAwards(pb.ListConversionAwardsRequest(journey_id="trial"))
        (award,) = awards.awards
        assert (award.conversion_id, award.value.amount_micros) == ("booked", 50_000_000)
        stream = stub.StreamConversionEvents(pb.StreamConversionEventsRequest(after_position=0))
        kinds = []
        async for item in stream:
            kinds.append(item.event.type)
            if len(kinds) == 2:
                stream.cancel()
                break
        assert kinds == [
            conversions_pb2.CONVERSION_EVENT_TYPE_AWARDED,
            conversions_pb2.CONVERSION_EVENT_TYPE_UPDATED,
        ]
