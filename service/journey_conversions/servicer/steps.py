"""Steps of a journey: marking a conversion and evaluating the goal."""

from __future__ import annotations

import asyncpg
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import domain, parse, render
from journey_conversions.calls import Call, rpc
from journey_conversions.servicer.base import ServicerBase
from journey_conversions.store import steps


class StepRpcs(ServicerBase):
    @rpc
    async def MarkConversion(
        self, request: pb.MarkConversionRequest, call: Call
    ) -> pb.MarkConversionResponse:
        checker = parse.Checker()
        checker.identifier("event_id", request.event_id)
        checker.identifier("enrollment_id", request.enrollment_id)
        checker.identifier("conversion_id", request.conversion_id)
        checker.identifier("step_id", request.step_id, required=False)
        mark_time = checker.timestamp("mark_time", request, call.bounds)
        checker.raise_if_any()
        assert mark_time is not None
        mark = domain.StepMark(
            request.event_id,
            request.enrollment_id,
            request.conversion_id,
            request.step_id,
            mark_time,
            domain.AwardSource.CONVERT_STEP,
        )

        async def do(conn: asyncpg.Connection) -> pb.MarkConversionResponse:
            award = await steps.mark_conversion(conn, call.tenant_id, mark, call.horizon)
            return pb.MarkConversionResponse(award=render.award(award))

        return await self._idempotent(
            call, "MarkConversion", request.event_id, request, pb.MarkConversionResponse, do
        )

    @rpc
    async def EvaluateGoal(
        self, request: pb.EvaluateGoalRequest, call: Call
    ) -> pb.EvaluateGoalResponse:
        checker = parse.Checker()
        checker.identifier("event_id", request.event_id)
        checker.identifier("enrollment_id", request.enrollment_id)
        checker.identifier("step_id", request.step_id, required=False)
        evaluate_time = checker.timestamp("evaluate_time", request, call.bounds)
        checker.raise_if_any()
        assert evaluate_time is not None

        async def do(conn: asyncpg.Connection) -> pb.EvaluateGoalResponse:
            result = await steps.evaluate_goal(
                conn,
                call.tenant_id,
                request.event_id,
                request.enrollment_id,
                request.step_id,
                evaluate_time,
                call.horizon,
            )
            return pb.EvaluateGoalResponse(
                goal_met=result.goal_met,
                goal_event_id=result.goal_event_id,
                credit=pb.GoalCredit.ValueType(result.credit),
                credited_journey_id=result.credited_journey_id,
                awards=[render.award(a) for a in result.awards],
            )

        return await self._idempotent(
            call, "EvaluateGoal", request.event_id, request, pb.EvaluateGoalResponse, do
        )
