"""The stream of conversion events, read from the outbox as the notifier signals."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import db, parse, render
from journey_conversions.calls import Call, stream_rpc
from journey_conversions.errors import Unavailable
from journey_conversions.servicer.base import ServicerBase
from journey_conversions.store import outbox

_STREAM_BATCH = 500


class StreamRpcs(ServicerBase):
    @stream_rpc
    async def StreamConversionEvents(
        self, request: pb.StreamConversionEventsRequest, call: Call
    ) -> AsyncIterator[pb.StreamConversionEventsResponse]:
        checker = parse.Checker()
        if request.after_position < 0:
            checker.fail("after_position", "must be 0 or more")
        checker.raise_if_any()
        position = request.after_position

        async def read_next(conn: asyncpg.Connection) -> list[outbox.StoredEvent]:
            return await outbox.read_after(conn, call.tenant_id, position, _STREAM_BATCH)

        with self.notifier.subscribe(call.tenant_id) as subscription:
            while not self.stopping.is_set():
                subscription.rearm()
                try:
                    found = await db.transaction(self.pool, read_next)
                except Unavailable:
                    found = []  # the database is away: keep the stream, try again shortly
                for event in found:
                    yield pb.StreamConversionEventsResponse(event=render.conversion_event(event))
                    position = event.position
                if len(found) < _STREAM_BATCH:
                    await subscription.wait(self.stopping)
