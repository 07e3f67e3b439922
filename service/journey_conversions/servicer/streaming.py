"""StreamIngest: the four batch writes over one long-lived stream, pipelined, each message
answered in order after its transaction committed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import grpc
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import metrics, pipeline, render
from journey_conversions.calls import Session, bidi_rpc
from journey_conversions.errors import InvalidArgument, ServiceError, Violation
from journey_conversions.servicer.base import BatchKind, ServicerBase
from journey_conversions.servicer.ingest import GOAL_EVENTS, TOUCHPOINTS
from journey_conversions.servicer.participation import ENROLLMENTS, EXITS

# Messages of one stream read and not yet answered. Four overlap one message's COMMIT (a wait
# for the disk) with the writing of the next ones, as the batch benchmark's 4 calls in flight
# do, and bound what one stream holds: 4 pooled connections, 4 messages of at most 16 MiB.
# The server reads no further message while this many are unanswered.
IN_FLIGHT = 4

# The batch each field of the request's oneof holds.
_BATCHES: dict[str, BatchKind[Any, Any]] = {
    "touchpoints": TOUCHPOINTS,
    "goal_events": GOAL_EVENTS,
    "enrollments": ENROLLMENTS,
    "exits": EXITS,
}
# Errors about the stream rather than the message: they end it, after the earlier answers.
_ENDS_THE_STREAM = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)

Keys = frozenset[tuple[str, str]]  # (keyspace, id) of the items of a message


class StreamingRpcs(ServicerBase):
    @bidi_rpc
    def StreamIngest(
        self, requests: AsyncIterator[pb.StreamIngestRequest], session: Session
    ) -> AsyncGenerator[pb.StreamIngestResponse, None]:
        writing: list[tuple[Keys, asyncio.Future[pb.StreamIngestResponse]]] = []

        def start(request: pb.StreamIngestRequest) -> asyncio.Future[pb.StreamIngestResponse]:
            """Starts writing the message at once, unless it names an id of an earlier one
            still being written: then after that one, as if messages applied one at a time in
            stream order (an exit after its entry, the first payload of a reused id)."""
            keys = _keys(request)
            writing[:] = [(named, task) for named, task in writing if not task.done()]
            earlier = [task for named, task in writing if named & keys]
            task = asyncio.ensure_future(self._answer(session, request, earlier))
            writing.append((keys, task))
            return task

        return pipeline.in_order(requests, IN_FLIGHT, start, metrics.STREAM_UNANSWERED)

    async def _answer(
        self,
        session: Session,
        request: pb.StreamIngestRequest,
        earlier: Sequence[asyncio.Future[Any]],
    ) -> pb.StreamIngestResponse:
        """The message written in a transaction of its own, exactly as its Batch RPC writes
        it; an error its Batch RPC would have ended with is the message's own."""
        response = pb.StreamIngestResponse(sequence=request.sequence)
        try:
            found = _batch(request)
            if found is None:
                raise InvalidArgument(
                    [Violation("batch", f"must be one of {', '.join(_BATCHES)}; none is set")]
                )
            batch, items = found
            if earlier:
                await asyncio.wait(earlier)
            async with session.message() as call:
                response.results.extend(await self._answer_batch(call, batch, items))
        except ServiceError as error:
            if error.code in _ENDS_THE_STREAM:
                raise
            response.error.CopyFrom(render.item_error(error))
            metrics.STREAM_MESSAGES.labels("refused").inc()
        else:
            metrics.STREAM_MESSAGES.labels("written").inc()
        return response


def _batch(request: pb.StreamIngestRequest) -> tuple[BatchKind[Any, Any], Sequence[Any]] | None:
    """The kind of the message's batch and its items; None when no batch is set."""
    field = request.WhichOneof("batch")
    if field is None:
        return None
    batch = _BATCHES[field]
    return batch, getattr(getattr(request, field), batch.field)


def _keys(request: pb.StreamIngestRequest) -> Keys:
    """The ids the message's items name, each with its keyspace."""
    found = _batch(request)
    if found is None:
        return frozenset()
    batch, items = found
    return frozenset((batch.keyspace, batch.key(item)) for item in items)
