"""The async client: deadlines, credentials (API key, TLS), retries and typed errors around the
stub."""

# The `timeout` parameters are gRPC deadlines: they are sent to the server with the call, which
# asyncio.timeout cannot do, so ASYNC109's advice does not apply here.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

import grpc
from google.protobuf.message import Message
from journeys.conversions.v1 import events_pb2, service_pb2
from journeys.conversions.v1.service_pb2_grpc import JourneyConversionsServiceStub

from journey_conversions_client.batching import (
    DEFAULT_BATCH_SIZE,
    merge_item_results,
    split_batches,
)
from journey_conversions_client.errors import JourneyConversionsError
from journey_conversions_client.retry import RetryPolicy
from journey_conversions_client.tls import TlsSettings

DEFAULT_TIMEOUT = 10.0
"""Seconds each call may take, retries included, unless the client or the call says otherwise."""
TENANT_HEADER = "x-tenant-id"
AUTHORIZATION_HEADER = "authorization"
# ErrorInfo reasons of calls the server refused before starting anything.
OVERLOADED = "OVERLOADED"  # RESOURCE_EXHAUSTED: at its limit of calls in flight
SHUTTING_DOWN = "SHUTTING_DOWN"  # UNAVAILABLE: draining before it stops

_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)
_Item = TypeVar("_Item", bound=Message)


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """A failed attempt that is about to be retried (given to the ``on_retry`` hook)."""

    method: str
    attempt: int
    delay: float
    error: JourneyConversionsError


class JourneyConversionsClient:
    """An async client of JourneyConversionsService.

    Every call has a deadline (``timeout`` seconds, retries included), sends the API key as
    ``authorization: Bearer <key>`` (the server takes the tenant from it), retries UNAVAILABLE
    with exponential backoff and jitter when repeating it is safe (reads, and writes carrying
    their idempotency key) and RESOURCE_EXHAUSTED refusals of an overloaded server (which
    started nothing), and raises ``JourneyConversionsError`` on failure. ``tls`` makes the
    channel TLS (with a client certificate: mutual TLS). ``tenant_id`` sends ``x-tenant-id``,
    which only a server in local development mode (``--auth dev``) reads. Use it as an async
    context manager, or call ``close()``::

        async with JourneyConversionsClient(
            "conversions.internal:50051", api_key=os.environ["JC_API_KEY"],
            tls=TlsSettings(ca_file="ca.pem"),
        ) as client:
            response = await client.get_journey(GetJourneyRequest(journey_id="welcome"))
    """

    def __init__(
        self,
        target: str | grpc.aio.Channel,
        *,
        api_key: str | None = None,
        tls: TlsSettings | None = None,
        tenant_id: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        channel_options: Sequence[tuple[str, Any]] = (),
        on_retry: Callable[[RetryEvent], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``target`` is "host:port" (a channel the client owns and closes: TLS with ``tls``,
        else plaintext) or a channel the caller made and closes."""
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        if isinstance(target, str):
            if tls is not None:
                self._channel = grpc.aio.secure_channel(
                    target, tls.credentials(), options=[*channel_options, *tls.options()]
                )
            else:
                self._channel = grpc.aio.insecure_channel(target, options=list(channel_options))
            self._owns_channel = True
        else:
            self._channel = target
            self._owns_channel = False
        self._stub = JourneyConversionsServiceStub(self._channel)
        self.api_key = api_key
        self.tenant_id = tenant_id
        self.timeout = timeout
        self.retry = retry if retry is not None else RetryPolicy()
        self._on_retry = on_retry
        self._rng = rng if rng is not None else random.Random()

    @property
    def channel(self) -> grpc.aio.Channel:
        """The channel the calls go through."""
        return self._channel

    def with_tenant(
        self, tenant_id: str | None = None, *, api_key: str | None = None
    ) -> JourneyConversionsClient:
        """A client for another tenant (its API key; or, in development mode, its id) that
        shares this client's channel (and does not close it)."""
        return JourneyConversionsClient(
            self._channel,
            api_key=api_key,
            tenant_id=tenant_id,
            timeout=self.timeout,
            retry=self.retry,
            on_retry=self._on_retry,
            rng=self._rng,
        )

    async def close(self) -> None:
        """Closes the channel when the client opened it."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- journeys and conversions ---------------------------------------------------------------

    async def define_journey(
        self, request: service_pb2.DefineJourneyRequest, *, timeout: float | None = None
    ) -> service_pb2.DefineJourneyResponse:
        """DefineJourney; retried only when ``request_id`` is set."""
        return await self._unary(
            "DefineJourney",
            self._stub.DefineJourney,
            request,
            retryable=bool(request.request_id),
            timeout=timeout,
        )

    async def get_journey(
        self, request: service_pb2.GetJourneyRequest, *, timeout: float | None = None
    ) -> service_pb2.GetJourneyResponse:
        """GetJourney."""
        return await self._unary(
            "GetJourney", self._stub.GetJourney, request, retryable=True, timeout=timeout
        )

    async def list_journeys(
        self, request: service_pb2.ListJourneysRequest, *, timeout: float | None = None
    ) -> service_pb2.ListJourneysResponse:
        """ListJourneys."""
        return await self._unary(
            "ListJourneys", self._stub.ListJourneys, request, retryable=True, timeout=timeout
        )

    async def define_conversion(
        self, request: service_pb2.DefineConversionRequest, *, timeout: float | None = None
    ) -> service_pb2.DefineConversionResponse:
        """DefineConversion; retried only when ``request_id`` is set."""
        return await self._unary(
            "DefineConversion",
            self._stub.DefineConversion,
            request,
            retryable=bool(request.request_id),
            timeout=timeout,
        )

    async def list_conversions(
        self, request: service_pb2.ListConversionsRequest, *, timeout: float | None = None
    ) -> service_pb2.ListConversionsResponse:
        """ListConversions."""
        return await self._unary(
            "ListConversions", self._stub.ListConversions, request, retryable=True, timeout=timeout
        )

    # -- enrollments ----------------------------------------------------------------------------

    async def enter_journey(
        self, request: service_pb2.EnterJourneyRequest, *, timeout: float | None = None
    ) -> service_pb2.EnterJourneyResponse:
        """EnterJourney; retried only when ``enrollment.enrollment_id`` is set."""
        return await self._unary(
            "EnterJourney",
            self._stub.EnterJourney,
            request,
            retryable=bool(request.enrollment.enrollment_id),
            timeout=timeout,
        )

    async def exit_journey(
        self, request: service_pb2.ExitJourneyRequest, *, timeout: float | None = None
    ) -> service_pb2.ExitJourneyResponse:
        """ExitJourney; retried only when ``enrollment_id`` is set (a repeated exit is a no-op)."""
        return await self._unary(
            "ExitJourney",
            self._stub.ExitJourney,
            request,
            retryable=bool(request.enrollment_id),
            timeout=timeout,
        )

    async def batch_enter_journey(
        self, request: service_pb2.BatchEnterJourneyRequest, *, timeout: float | None = None
    ) -> service_pb2.BatchEnterJourneyResponse:
        """One BatchEnterJourney call (1 to 1000 items); retried only when every item has an
        enrollment_id. See ``enter_journeys`` for lists of any length."""
        return await self._unary(
            "BatchEnterJourney",
            self._stub.BatchEnterJourney,
            request,
            retryable=all(e.enrollment_id for e in request.enrollments),
            timeout=timeout,
        )

    async def enter_journeys(
        self,
        enrollments: Sequence[events_pb2.Enrollment],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout: float | None = None,
    ) -> list[events_pb2.ItemResult]:
        """Enters any number of enrollments in BatchEnterJourney calls of ``batch_size`` (at
        most 1000), one after the other, and returns one result per enrollment in the order
        given, its ``index`` counting from the start of ``enrollments`` (its ``event_id`` is
        the enrollment_id).

        ``timeout`` applies to each batch call. When a call fails, the exception is raised and
        the batches before it stay stored; sending the whole list again is safe, as the
        enrollments already stored come back DUPLICATE.
        """

        async def send(batch: Sequence[events_pb2.Enrollment]) -> Sequence[events_pb2.ItemResult]:
            request = service_pb2.BatchEnterJourneyRequest(enrollments=batch)
            return (await self.batch_enter_journey(request, timeout=timeout)).results

        return await _in_batches("BatchEnterJourney", enrollments, batch_size, send)

    async def batch_exit_journey(
        self, request: service_pb2.BatchExitJourneyRequest, *, timeout: float | None = None
    ) -> service_pb2.BatchExitJourneyResponse:
        """One BatchExitJourney call (1 to 1000 items); retried only when every item has an
        enrollment_id (a repeated exit is a no-op). See ``exit_journeys`` for lists of any
        length."""
        return await self._unary(
            "BatchExitJourney",
            self._stub.BatchExitJourney,
            request,
            retryable=all(x.enrollment_id for x in request.exits),
            timeout=timeout,
        )

    async def exit_journeys(
        self,
        exits: Sequence[events_pb2.EnrollmentExit],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout: float | None = None,
    ) -> list[events_pb2.ItemResult]:
        """Ends any number of enrollments in BatchExitJourney calls, as ``enter_journeys``
        enters them: one result per exit, in the order given, indexed from the start of
        ``exits``; sending the list again returns DUPLICATE for the exits already stored."""

        async def send(
            batch: Sequence[events_pb2.EnrollmentExit],
        ) -> Sequence[events_pb2.ItemResult]:
            request = service_pb2.BatchExitJourneyRequest(exits=batch)
            return (await self.batch_exit_journey(request, timeout=timeout)).results

        return await _in_batches("BatchExitJourney", exits, batch_size, send)

    async def get_enrollment(
        self, request: service_pb2.GetEnrollmentRequest, *, timeout: float | None = None
    ) -> service_pb2.GetEnrollmentResponse:
        """GetEnrollment."""
        return await self._unary(
            "GetEnrollment", self._stub.GetEnrollment, request, retryable=True, timeout=timeout
        )

    # -- events ---------------------------------------------------------------------------------

    async def record_touchpoint(
        self, request: service_pb2.RecordTouchpointRequest, *, timeout: float | None = None
    ) -> service_pb2.RecordTouchpointResponse:
        """RecordTouchpoint; retried only when ``touchpoint.event_id`` is set."""
        return await self._unary(
            "RecordTouchpoint",
            self._stub.RecordTouchpoint,
            request,
            retryable=bool(request.touchpoint.event_id),
            timeout=timeout,
        )

    async def batch_record_touchpoints(
        self, request: service_pb2.BatchRecordTouchpointsRequest, *, timeout: float | None = None
    ) -> service_pb2.BatchRecordTouchpointsResponse:
        """One BatchRecordTouchpoints call (1 to 1000 items); retried only when every item has
        an event_id. See ``record_touchpoints`` for lists of any length."""
        return await self._unary(
            "BatchRecordTouchpoints",
            self._stub.BatchRecordTouchpoints,
            request,
            retryable=all(t.event_id for t in request.touchpoints),
            timeout=timeout,
        )

    async def record_touchpoints(
        self,
        touchpoints: Sequence[events_pb2.Touchpoint],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout: float | None = None,
    ) -> list[events_pb2.ItemResult]:
        """Records any number of touchpoints in BatchRecordTouchpoints calls of ``batch_size``
        (at most 1000), one after the other, and returns one result per touchpoint in the
        order given, its ``index`` counting from the start of ``touchpoints``.

        ``timeout`` applies to each batch call. When a call fails, the exception is raised and
        the batches before it stay recorded; sending the whole list again is safe, as the
        items already stored come back DUPLICATE.
        """

        async def send(batch: Sequence[events_pb2.Touchpoint]) -> Sequence[events_pb2.ItemResult]:
            request = service_pb2.BatchRecordTouchpointsRequest(touchpoints=batch)
            return (await self.batch_record_touchpoints(request, timeout=timeout)).results

        return await _in_batches("BatchRecordTouchpoints", touchpoints, batch_size, send)

    async def record_goal_event(
        self, request: service_pb2.RecordGoalEventRequest, *, timeout: float | None = None
    ) -> service_pb2.RecordGoalEventResponse:
        """RecordGoalEvent; retried only when ``goal_event.event_id`` is set."""
        return await self._unary(
            "RecordGoalEvent",
            self._stub.RecordGoalEvent,
            request,
            retryable=bool(request.goal_event.event_id),
            timeout=timeout,
        )

    async def batch_record_goal_events(
        self, request: service_pb2.BatchRecordGoalEventsRequest, *, timeout: float | None = None
    ) -> service_pb2.BatchRecordGoalEventsResponse:
        """One BatchRecordGoalEvents call (1 to 1000 items); retried only when every item has
        an event_id. See ``record_goal_events`` for lists of any length."""
        return await self._unary(
            "BatchRecordGoalEvents",
            self._stub.BatchRecordGoalEvents,
            request,
            retryable=all(g.event_id for g in request.goal_events),
            timeout=timeout,
        )

    async def record_goal_events(
        self,
        goal_events: Sequence[events_pb2.GoalEvent],
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        timeout: float | None = None,
    ) -> list[events_pb2.ItemResult]:
        """Records any number of goal events in batches, as ``record_touchpoints`` does."""

        async def send(batch: Sequence[events_pb2.GoalEvent]) -> Sequence[events_pb2.ItemResult]:
            request = service_pb2.BatchRecordGoalEventsRequest(goal_events=batch)
            return (await self.batch_record_goal_events(request, timeout=timeout)).results

        return await _in_batches("BatchRecordGoalEvents", goal_events, batch_size, send)

    # -- conversions and attribution ------------------------------------------------------------

    async def mark_conversion(
        self, request: service_pb2.MarkConversionRequest, *, timeout: float | None = None
    ) -> service_pb2.MarkConversionResponse:
        """MarkConversion; retried only when ``event_id`` is set."""
        return await self._unary(
            "MarkConversion",
            self._stub.MarkConversion,
            request,
            retryable=bool(request.event_id),
            timeout=timeout,
        )

    async def evaluate_goal(
        self, request: service_pb2.EvaluateGoalRequest, *, timeout: float | None = None
    ) -> service_pb2.EvaluateGoalResponse:
        """EvaluateGoal; retried only when ``event_id`` is set."""
        return await self._unary(
            "EvaluateGoal",
            self._stub.EvaluateGoal,
            request,
            retryable=bool(request.event_id),
            timeout=timeout,
        )

    async def explain_goal_event(
        self, request: service_pb2.ExplainGoalEventRequest, *, timeout: float | None = None
    ) -> service_pb2.ExplainGoalEventResponse:
        """ExplainGoalEvent."""
        return await self._unary(
            "ExplainGoalEvent",
            self._stub.ExplainGoalEvent,
            request,
            retryable=True,
            timeout=timeout,
        )

    async def list_conversion_awards(
        self, request: service_pb2.ListConversionAwardsRequest, *, timeout: float | None = None
    ) -> service_pb2.ListConversionAwardsResponse:
        """ListConversionAwards."""
        return await self._unary(
            "ListConversionAwards",
            self._stub.ListConversionAwards,
            request,
            retryable=True,
            timeout=timeout,
        )

    async def get_journey_report(
        self, request: service_pb2.GetJourneyReportRequest, *, timeout: float | None = None
    ) -> service_pb2.GetJourneyReportResponse:
        """GetJourneyReport."""
        return await self._unary(
            "GetJourneyReport",
            self._stub.GetJourneyReport,
            request,
            retryable=True,
            timeout=timeout,
        )

    async def stream_conversion_events(
        self, request: service_pb2.StreamConversionEventsRequest, *, timeout: float | None = None
    ) -> AsyncIterator[service_pb2.StreamConversionEventsResponse]:
        """StreamConversionEvents, as an async iterator. The stream does not end by itself, so
        it has no deadline unless ``timeout`` is given, and it is not retried: reconnect with
        the last position processed as ``after_position``."""
        call = self._stub.StreamConversionEvents(
            request, timeout=timeout, metadata=self._metadata()
        )
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as error:
            raise JourneyConversionsError.from_rpc_error(error) from error
        finally:
            call.cancel()

    # -- plumbing -------------------------------------------------------------------------------

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        metadata: list[tuple[str, str]] = []
        if self.api_key:
            metadata.append((AUTHORIZATION_HEADER, f"Bearer {self.api_key}"))
        if self.tenant_id:
            metadata.append((TENANT_HEADER, self.tenant_id))
        return tuple(metadata)

    def _may_retry(self, error: JourneyConversionsError, repeatable: bool) -> bool:
        """Whether trying again is useful and safe: a retryable code on a repeatable call, or
        a refusal by which the server says it started nothing."""
        if error.code == grpc.StatusCode.RESOURCE_EXHAUSTED and error.reason == OVERLOADED:
            return self.retry.retry_overloaded
        if error.reason == SHUTTING_DOWN:  # refused before anything started: safe for any call
            return error.code in self.retry.retryable_codes
        return repeatable and error.code in self.retry.retryable_codes

    async def _unary(
        self,
        name: str,
        method: grpc.aio.UnaryUnaryMultiCallable[_Req, _Resp],
        request: _Req,
        *,
        retryable: bool,
        timeout: float | None,
    ) -> _Resp:
        """Calls ``method`` until it succeeds, fails for good, or the deadline passes. The
        deadline covers every attempt and the waits between them."""
        budget = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        metadata = self._metadata()
        attempt = 0
        while True:
            attempt += 1
            remaining = max(deadline - loop.time(), 0.0)
            try:
                return await method(request, timeout=remaining, metadata=metadata)
            except grpc.aio.AioRpcError as rpc_error:
                error = JourneyConversionsError.from_rpc_error(rpc_error, attempts=attempt)
                if not (self._may_retry(error, retryable) and attempt < self.retry.max_attempts):
                    raise error from rpc_error
                delay = self.retry.backoff(attempt, self._rng)
                if loop.time() + delay >= deadline:
                    raise error from rpc_error
                if self._on_retry is not None:
                    self._on_retry(RetryEvent(name, attempt, delay, error))
            await asyncio.sleep(delay)


async def _in_batches(
    method: str,
    items: Sequence[_Item],
    batch_size: int,
    send: Callable[[Sequence[_Item]], Awaitable[Sequence[events_pb2.ItemResult]]],
) -> list[events_pb2.ItemResult]:
    """Sends ``items`` in consecutive batches of ``batch_size``, one call after the other, and
    merges the results with indices into the whole list."""
    results: list[tuple[int, Sequence[events_pb2.ItemResult]]] = []
    offset = 0
    for batch in split_batches(items, batch_size):
        answered = await send(batch)
        _check_batch_results(method, answered, len(batch))
        results.append((offset, answered))
        offset += len(batch)
    return merge_item_results(results)


def _check_batch_results(
    method: str, results: Sequence[events_pb2.ItemResult], expected: int
) -> None:
    """The service answers one result per item, indexed from 0 within the batch."""
    if sorted(r.index for r in results) != list(range(expected)):
        raise JourneyConversionsError(
            grpc.StatusCode.INTERNAL,
            f"{method} answered {len(results)} results for {expected} items",
            reason="CLIENT_BATCH_RESULT_MISMATCH",
        )
