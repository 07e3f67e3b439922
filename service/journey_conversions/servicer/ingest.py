"""Touchpoints and goal events, one at a time or in batches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

import asyncpg
from journeys.conversions.v1 import events_pb2
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import domain, parse, render
from journey_conversions.calls import Call, rpc
from journey_conversions.clock import Bounds
from journey_conversions.errors import under
from journey_conversions.servicer.base import (
    ItemWriter,
    ServicerBase,
    answer_batch,
    count_events,
    parse_required,
)
from journey_conversions.store import ingest, queries

_Item = TypeVar("_Item", domain.Touchpoint, domain.GoalEvent)
_Message = TypeVar("_Message", events_pb2.Touchpoint, events_pb2.GoalEvent)


class IngestRpcs(ServicerBase):
    async def _record_batch(
        self,
        call: Call,
        kind: str,
        field: str,
        items: Sequence[_Message],
        parse_item: Callable[[parse.Checker, _Message, Bounds], _Item | None],
        record: ItemWriter[_Item],
    ) -> list[events_pb2.ItemResult]:
        """Parses each item on its own, writes the valid ones together, and answers for every
        item in request order: a bad item does not sink the batch."""

        async def write(parsed: list[_Item]) -> list[ingest.ItemResult]:
            return await self._write_items(call, kind, parsed, record)

        return await answer_batch(call, field, items, _event_id, parse_item, write)

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
        results = await self._record_batch(
            call,
            "touchpoint",
            "touchpoints",
            request.touchpoints,
            parse.touchpoint,
            ingest.record_touchpoints,
        )
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
        results = await self._record_batch(
            call,
            "goal_event",
            "goal_events",
            request.goal_events,
            parse.goal_event,
            ingest.record_goal_events,
        )
        return pb.BatchRecordGoalEventsResponse(results=results)


async def _record_goal_events_and_outcomes(
    conn: asyncpg.Connection,
    tenant_id: str,
    events: Sequence[domain.GoalEvent],
    horizon: datetime,
) -> list[tuple[ingest.ItemResult, domain.Outcome | None]]:
    """The events written, each with the outcome read back in the same transaction: the one
    this write (or the first write of its id) committed with."""
    results = await ingest.record_goal_events(conn, tenant_id, events, horizon)
    written = [e.event_id for e, r in zip(events, results, strict=True) if r.error is None]
    outcomes = await queries.stored_outcomes(conn, tenant_id, written)
    return [
        (r, None if r.error else outcomes.get(e.event_id))
        for e, r in zip(events, results, strict=True)
    ]


def _event_id(item: events_pb2.Touchpoint | events_pb2.GoalEvent) -> str:
    return item.event_id
