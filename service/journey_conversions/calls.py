"""What every RPC does around its own work: who calls (tenant and scope, auth.py), one
canonical log line, metrics, and the mapping of errors to precise gRPC statuses."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn, TypeVar

import grpc
import structlog
from google.protobuf.message import Message

from journey_conversions import db_watch, metrics
from journey_conversions.admission import Admission
from journey_conversions.auth import Authenticator, Metadata, Principal, authorize
from journey_conversions.clock import Bounds, TimePolicy, utc_now
from journey_conversions.db import unavailable
from journey_conversions.errors import ServiceError, to_grpc_status
from journey_conversions.logs import log

Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)
Self = TypeVar("Self")

_KEY_FIELDS = ("request_id", "event_id", "enrollment_id")
_NESTED_KEYS = (
    ("touchpoint", "event_id"),
    ("goal_event", "event_id"),
    ("enrollment", "enrollment_id"),
)


@dataclass(frozen=True, slots=True)
class Call:
    """The caller's tenant and the instant the call is judged at."""

    tenant_id: str
    now: datetime
    bounds: Bounds
    horizon: datetime


class HasCallSettings:
    """Mixed into the servicer: what `rpc` needs to build a Call."""

    authenticator: Authenticator
    admission: Admission
    time_policy: TimePolicy
    stopping: asyncio.Event  # set when shutdown begins: new calls are refused


SHUTTING_DOWN = "SHUTTING_DOWN"


def _metadata(context: grpc.aio.ServicerContext[Any, Any]) -> Metadata:
    """The call's text metadata (binary `-bin` entries carry nothing auth reads)."""
    return [(k, v) for k, v in context.invocation_metadata() or () if isinstance(v, str)]


def _request_key(request: Message) -> str:
    """The idempotency key of a write, for the log line."""
    fields = request.DESCRIPTOR.fields_by_name
    for name in _KEY_FIELDS:
        if name in fields:
            return str(getattr(request, name))
    for name, key in _NESTED_KEYS:
        if name in fields:
            return str(getattr(getattr(request, name), key))
    return ""


def _shutting_down(what: str) -> ServiceError:
    return ServiceError(
        SHUTTING_DOWN,
        f"the server is shutting down and {what}; retry (another replica answers)",
        code=grpc.StatusCode.UNAVAILABLE,
    )


def _judged_now(owner: HasCallSettings, principal: Principal, method: str) -> Call:
    """The call of `principal`, if its scope covers `method`, judged at this instant."""
    authorize(principal, method)
    now = utc_now()
    policy = owner.time_policy
    return Call(principal.tenant_id, now, policy.bounds(now), policy.horizon(now))


async def _begin(
    owner: HasCallSettings, context: grpc.aio.ServicerContext[Any, Any], method: str, key: str
) -> Call:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(method=method, request_id=key)
    if owner.stopping.is_set():
        raise _shutting_down("started nothing")
    principal = await owner.authenticator.principal(_metadata(context), context.auth_context())
    structlog.contextvars.bind_contextvars(tenant=principal.tenant_id, key_id=principal.key_id)
    return _judged_now(owner, principal, method)


def _as_service_error(error: BaseException) -> ServiceError | None:
    if isinstance(error, ServiceError):
        return error
    return unavailable(error)


def _cancelled_code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    """Why grpc cancelled the handler: its deadline passed, or the client went away."""
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.CANCELLED


def _finish(method: str, started: float, code: grpc.StatusCode, error: str = "") -> None:
    elapsed = time.perf_counter() - started
    metrics.CALLS.labels(method, code.name).inc()
    metrics.LATENCY.labels(method).observe(elapsed)
    fields: dict[str, Any] = {"code": code.name, "duration_ms": round(elapsed * 1000, 3)}
    if error:
        fields["error"] = error
    if code == grpc.StatusCode.INTERNAL:
        log.error("rpc", **fields)
    else:
        log.info("rpc", **fields)


async def _fail(
    context: grpc.aio.ServicerContext[Any, Any], method: str, started: float, error: Exception
) -> NoReturn:
    """Ends the call with the precise status of a known error, or INTERNAL (logged with its
    traceback) for a bug; context.abort raises."""
    known = _as_service_error(error)
    if known is None:
        log.exception("unexpected error")
        _finish(method, started, grpc.StatusCode.INTERNAL, repr(error))
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")
    else:
        if known.reason == "DATABASE_UNAVAILABLE":
            db_watch.notice_unavailable()  # health follows at once, not at the next probe
        _finish(method, started, known.code, known.reason)
        status = to_grpc_status(known)
        await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("context.abort returned")


def rpc(
    work: Callable[[Self, Req, Call], Awaitable[Resp]],
) -> Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], Awaitable[Resp]]:
    """Wraps a unary method written as `work(self, request, call) -> response`."""
    method = work.__name__

    @functools.wraps(work)
    async def handler(
        self: Self, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> Resp:
        assert isinstance(self, HasCallSettings)
        started = time.perf_counter()
        try:
            call = await _begin(self, context, method, _request_key(request))
            async with self.admission.call(call.tenant_id, context.time_remaining()):
                response = await work(self, request, call)
        except asyncio.CancelledError:
            _finish(method, started, _cancelled_code(context))  # logged and counted, then gone
            raise
        except Exception as error:
            await _fail(context, method, started, error)
        _finish(method, started, grpc.StatusCode.OK)
        return response

    return handler


def stream_rpc(
    work: Callable[[Self, Req, Call], AsyncIterator[Resp]],
) -> Callable[[Self, Req, grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]]:
    """Wraps a server-streaming method written as an async generator `work(self, request, call)`."""
    method = work.__name__

    @functools.wraps(work)
    async def handler(
        self: Self, request: Req, context: grpc.aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[Resp]:
        assert isinstance(self, HasCallSettings)
        started = time.perf_counter()
        try:
            call = await _begin(self, context, method, "")
            with self.admission.stream(call.tenant_id):
                async for item in work(self, request, call):
                    yield item
        except asyncio.CancelledError:
            _finish(method, started, _cancelled_code(context))
            raise
        except Exception as error:
            await _fail(context, method, started, error)
        _finish(method, started, grpc.StatusCode.OK)

    return handler


@dataclass(frozen=True, slots=True)
class Session:
    """The caller of a bidirectional stream. Each message is a call of its own: judged at its
    own instant (a stream may stay open for days), with the credentials checked again (a
    revoked key stops an open stream within --key-recheck-seconds, as it stops unary calls:
    the authenticator remembers a verified key, so this costs no scrypt), and holding a slot
    of the calls in flight while it works (admission)."""

    owner: HasCallSettings
    method: str
    context: grpc.aio.ServicerContext[Any, Any]

    @contextlib.asynccontextmanager
    async def message(self) -> AsyncIterator[Call]:
        principal = await self.owner.authenticator.principal(
            _metadata(self.context), self.context.auth_context()
        )
        call = _judged_now(self.owner, principal, self.method)
        async with self.owner.admission.call(call.tenant_id, self.context.time_remaining()):
            yield call


async def _until_stopping(
    requests: AsyncIterator[Req], stopping: asyncio.Event
) -> AsyncGenerator[Req, None]:
    """The stream's requests until the client half-closes; once shutdown begins, SHUTTING_DOWN
    instead of the next one (the client sends it again, to another replica)."""
    stopped = asyncio.ensure_future(stopping.wait())
    reading: asyncio.Future[Req | None] | None = None
    try:
        while True:
            reading = asyncio.ensure_future(anext(requests, None))
            await asyncio.wait((reading, stopped), return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                raise _shutting_down("reads no more of this stream")
            request = reading.result()
            if request is None:
                return
            yield request
    finally:
        for pending in (stopped, reading):
            if pending is not None:
                pending.cancel()


def bidi_rpc(
    work: Callable[[Self, AsyncIterator[Req], Session], AsyncGenerator[Resp, None]],
) -> Callable[[Self, AsyncIterator[Req], grpc.aio.ServicerContext[Req, Resp]], AsyncIterator[Resp]]:
    """Wraps a bidirectional-streaming method written as an async generator `work(self,
    requests, session)`: the caller is checked at the start, before any request is read, and
    the log line at the end counts the responses sent."""
    method = work.__name__

    @functools.wraps(work)
    async def handler(
        self: Self, requests: AsyncIterator[Req], context: grpc.aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[Resp]:
        assert isinstance(self, HasCallSettings)
        started = time.perf_counter()
        sent = 0
        try:
            await _begin(self, context, method, "")
            # Headers now tell the client the stream is accepted: it may wait for them before
            # writing, rather than write into a stream its credentials are about to end.
            await context.send_initial_metadata(())
            # Closed in this order whatever happens: `work` (which stops its own tasks), then
            # the requests it was reading.
            async with (
                contextlib.aclosing(_until_stopping(requests, self.stopping)) as read,
                contextlib.aclosing(work(self, read, Session(self, method, context))) as answers,
            ):
                async for item in answers:
                    yield item
                    sent += 1
        except (asyncio.CancelledError, GeneratorExit):
            # Cancelled in here, or while grpc was sending (grpc then closes this generator).
            structlog.contextvars.bind_contextvars(responses=sent)
            _finish(method, started, _cancelled_code(context))
            raise
        except Exception as error:
            structlog.contextvars.bind_contextvars(responses=sent)
            await _fail(context, method, started, error)
        structlog.contextvars.bind_contextvars(responses=sent)
        _finish(method, started, grpc.StatusCode.OK)

    return handler
