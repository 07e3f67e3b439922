"""Touchpoints and goal events, one at a time or in batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import asyncpg
from journeys.conversions.v1 import events_pb2
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import domain, parse, render
from journey_conversions.calls import Call, rpc
from journey_conversions.errors import under
from journey_conversions.servicer.base import BatchKind, ServicerBase, count_events, parse_required
from journey_conversions.store import ingest, queries


def _event_id(item: events_pb2.Touchpoint | events_pb2.GoalEvent) -> str:
    return item.event_id


TOUCHPOINTS: BatchKind[events_pb2.Touchpoint, domain.Touchpoint] = BatchKind(
    kind="touchpoint",
    field="touchpoints",
    key=_event_id,
    keyspace="touchpoint",
    parse_item=parse.touchpoint,
    write=ingest.record_touchpoints,
)
GOAL_EVENTS: BatchKind[events_pb2.GoalEvent, domain.GoalEvent] = BatchKind(
    kind="goal_event",
    field="goal_events",
    key=_event_id,
    keyspace="goal_event",
    parse_item=parse.goal_event,
    write=ingest.record_goal_events,
)


class IngestRpcs(ServicerBase):
    @rpc
    async def RecordTouchpoint(
        self, request: pb.RecordTouchpointRequest, call: Call
    ) -> pb.RecordTouchpointResponse:
        touchpoint = parse_required("touchpoint", request.touchpoint, parse.touchpoint, call.bounds)
        result = await self.group_commit.write(
            "touchpoint", call.tenant_id, touchpoint, call.horizon, ingest.record_touchpoints
        )
        count_events("touchpoint", [result])
        if result.error is not None:
            raise under("touchpoint", result.error)
        return pb.RecordTouchpointResponse(touchpoint=render.touchpoint(touchpoint))

    @rpc
    async def BatchRecordTouchpoints(
        self, request: pb.BatchRecordTouchpointsRequest, call: Call
    ) -> pb.BatchRecordTouchpointsResponse:
        results = await self._answer_batch(call, TOUCHPOINTS, request.touchpoints)
        return pb.BatchRecordTouchpointsResponse(results=results)

    @rpc
    async def RecordGoalEvent(
        self, request: pb.RecordGoalEventRequest, call: Call
    ) -> pb.RecordGoalEventResponse:
        event = parse_required("goal_event", request.goal_event, parse.goal_event, call.bounds)
        result, outcome = await self.group_commit.write(
            "goal_event", call.tenant_id, event, call.horizon, _record_goal_events_and_outcomes
        )
        count_events("goal_event", [result])
        if result.error is not None:
            raise under("goal_event", result.error)
        response = pb.RecordGoalEventResponse(goal_event=render.goal_event(event))
        if outcome is not None:
            response.outcome.CopyFrom(render.outcome(outcome))
        return response

    @rpc
    async def BatchRecordGoalEvents(
        self, request: pb.BatchRecordGoalEventsRequest, call: Call
    ) -> pb.BatchRecordGoalEventsResponse:
        results = await self._answer_batch(call, GOAL_EVENTS, request.goal_events)
        return pb.BatchRecordGoalEventsResponse(results=results)


async def _record_goal_events_and_outcomes(
    conn: asyncpg.Connection,
    tenant_id: str,
    events: Sequence[domain.GoalEvent],
    horizon: datetime,
) -> list[tuple[ingest.ItemResult, domain.Outcome | None]]:
    """The events written, each with the outcome it committed with: the one this write
    decided and stored for a new event (without the candidates the store does not keep), the
    one read back for a repeat of an id (that its first write committed with)."""
    results, decided = await ingest.record_goal_events_deciding(conn, tenant_id, events, horizon)
    written = [e.event_id for e, r in zip(events, results, strict=True) if r.error is None]
    outcomes = {e: replace(decided[e], candidates=()) for e in written if e in decided}
    if repeated := [e for e in written if e not in outcomes]:
        outcomes.update(await queries.stored_outcomes(conn, tenant_id, repeated))
    return [
        (r, None if r.error else outcomes.get(e.event_id))
        for e, r in zip(events, results, strict=True)
    ]
