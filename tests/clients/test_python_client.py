"""The Python client (journey_conversions_client) against the live server: deadlines, the
tenant header, typed errors, batch splitting and retries on UNAVAILABLE."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from journeys.conversions.v1 import conversions_pb2, events_pb2, journey_pb2, service_pb2

from journey_conversions_client import (
    ERROR_DOMAIN,
    TENANT_HEADER,
    JourneyConversionsClient,
    JourneyConversionsError,
    RetryEvent,
    RetryPolicy,
    split_batches,
)

_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

MESSAGE_ID = "welcome-email"


@dataclass(frozen=True)
class RecordedCall:
    method: str
    timeout: float | None
    tenant: str | None
    request: object


class RecordingInterceptor(grpc.aio.UnaryUnaryClientInterceptor):
    """Notes what each unary call sends: method, deadline, tenant header and request."""

    def __init__(self) -> None:
        self.calls: list[RecordedCall] = []

    async def intercept_unary_unary(
        self,
        continuation: Callable[
            [grpc.aio.ClientCallDetails, _Req], Awaitable[grpc.aio.UnaryUnaryCall[_Req, _Resp]]
        ],
        client_call_details: grpc.aio.ClientCallDetails,
        request: _Req,
    ) -> _Resp | grpc.aio.UnaryUnaryCall[_Req, _Resp]:
        method: str | bytes = client_call_details.method
        metadata = client_call_details.metadata
        tenant = metadata.get(TENANT_HEADER) if metadata is not None else None
        self.calls.append(
            RecordedCall(
                method=method.decode() if isinstance(method, bytes) else method,
                timeout=client_call_details.timeout,
                tenant=str(tenant) if tenant is not None else None,
                request=request,
            )
        )
        return await continuation(client_call_details, request)

    def named(self, rpc: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.method.endswith("/" + rpc)]


@pytest.fixture
async def recorded(
    service_target: str,
) -> AsyncIterator[tuple[grpc.aio.Channel, RecordingInterceptor]]:
    interceptor = RecordingInterceptor()
    channel = grpc.aio.insecure_channel(service_target, interceptors=[interceptor])
    yield channel, interceptor
    await channel.close()


def ts(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def email_journey(journey_id: str) -> journey_pb2.Journey:
    return journey_pb2.Journey(
        journey_id=journey_id,
        display_name=f"Client test {journey_id}",
        goal=journey_pb2.GoalCriterion(
            event_type=journey_pb2.GOAL_EVENT_TYPE_EMAIL_CLICKED, message_ids=[MESSAGE_ID]
        ),
        versions=[
            journey_pb2.JourneyVersion(
                version=1,
                messages=[
                    journey_pb2.JourneyMessage(
                        message_id=MESSAGE_ID, channel=journey_pb2.CHANNEL_EMAIL
                    )
                ],
            )
        ],
    )


def delivered(event_id: str, journey_id: str, contact_id: str) -> events_pb2.Touchpoint:
    return events_pb2.Touchpoint(
        event_id=event_id,
        contact_id=contact_id,
        journey_id=journey_id,
        version=1,
        message_id=MESSAGE_ID,
        channel=journey_pb2.CHANNEL_EMAIL,
        action=events_pb2.TOUCHPOINT_ACTION_DELIVERED,
        occur_time=ts(datetime.now(UTC) - timedelta(minutes=5)),
    )


async def define(client: JourneyConversionsClient, journey_id: str) -> None:
    await client.define_journey(
        service_pb2.DefineJourneyRequest(
            request_id=f"define-{journey_id}", journey=email_journey(journey_id)
        )
    )


def closed_port() -> int:
    """A loopback port nothing listens on (bound for a moment, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class TestJourneyFlow:
    """Through the client, an entry, a touchpoint and a goal event show up in the report."""

    async def test_entry_touchpoint_and_goal_event_are_reported(
        self, client: JourneyConversionsClient
    ) -> None:
        now = datetime.now(UTC)
        await define(client, "flow-journey")
        await client.enter_journey(
            service_pb2.EnterJourneyRequest(
                enrollment=events_pb2.Enrollment(
                    enrollment_id="flow-enrollment",
                    contact_id="flow-contact",
                    journey_id="flow-journey",
                    version=1,
                    enter_time=ts(now - timedelta(minutes=10)),
                )
            )
        )
        await client.record_touchpoint(
            service_pb2.RecordTouchpointRequest(
                touchpoint=delivered("flow-touchpoint", "flow-journey", "flow-contact")
            )
        )
        goal = await client.record_goal_event(
            service_pb2.RecordGoalEventRequest(
                goal_event=events_pb2.GoalEvent(
                    event_id="flow-goal",
                    contact_id="flow-contact",
                    event_type=journey_pb2.GOAL_EVENT_TYPE_EMAIL_CLICKED,
                    message_id=MESSAGE_ID,
                    occur_time=ts(now - timedelta(minutes=1)),
                )
            )
        )
        assert goal.outcome.status == conversions_pb2.OUTCOME_STATUS_CONVERTED
        assert goal.outcome.touchpoint_event_id == "flow-touchpoint"

        report = (
            await client.get_journey_report(
                service_pb2.GetJourneyReportRequest(journey_id="flow-journey")
            )
        ).report
        assert report.entered == 1
        assert report.goal_conversions == 1
        [message] = report.messages
        assert message.message_id == MESSAGE_ID
        assert [(c.action, c.count) for c in message.touchpoints] == [
            (events_pb2.TOUCHPOINT_ACTION_DELIVERED, 1)
        ]


class TestDeadlines:
    """Every call carries a deadline: the client's default, or the one the call names."""

    async def test_every_call_carries_the_client_default_deadline(
        self, recorded: tuple[grpc.aio.Channel, RecordingInterceptor], tenant_id: str
    ) -> None:
        channel, interceptor = recorded
        client = JourneyConversionsClient(channel, tenant_id=tenant_id, timeout=7.5)
        await define(client, "deadline-journey")
        await client.get_journey(service_pb2.GetJourneyRequest(journey_id="deadline-journey"))
        await client.get_journey_report(
            service_pb2.GetJourneyReportRequest(journey_id="deadline-journey")
        )
        assert len(interceptor.calls) == 3
        for call in interceptor.calls:
            assert call.timeout is not None, call.method
            assert 0 < call.timeout <= 7.5, call

    async def test_a_call_can_name_its_own_deadline(
        self, recorded: tuple[grpc.aio.Channel, RecordingInterceptor], tenant_id: str
    ) -> None:
        channel, interceptor = recorded
        client = JourneyConversionsClient(channel, tenant_id=tenant_id, timeout=30)
        await client.list_journeys(service_pb2.ListJourneysRequest(), timeout=2.0)
        [call] = interceptor.calls
        assert call.timeout is not None
        assert 0 < call.timeout <= 2.0

    async def test_a_deadline_that_passes_surfaces_as_deadline_exceeded(
        self, client: JourneyConversionsClient
    ) -> None:
        with pytest.raises(JourneyConversionsError) as caught:
            await client.list_journeys(service_pb2.ListJourneysRequest(), timeout=1e-6)
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED

    def test_the_default_deadline_must_be_positive(self) -> None:
        with pytest.raises(ValueError, match="timeout"):
            JourneyConversionsClient("127.0.0.1:1", timeout=0)


class TestTenantHeader:
    """The tenant goes out as x-tenant-id metadata, and one tenant's data is not another's."""

    async def test_the_tenant_is_sent_as_x_tenant_id(
        self, recorded: tuple[grpc.aio.Channel, RecordingInterceptor], tenant_id: str
    ) -> None:
        channel, interceptor = recorded
        client = JourneyConversionsClient(channel, tenant_id=tenant_id)
        await client.list_journeys(service_pb2.ListJourneysRequest())
        await client.with_tenant(None).list_journeys(service_pb2.ListJourneysRequest())
        assert [c.tenant for c in interceptor.calls] == [tenant_id, None]

    async def test_a_journey_of_one_tenant_is_not_found_for_another(
        self, client: JourneyConversionsClient
    ) -> None:
        await define(client, "tenant-journey")
        found = await client.get_journey(service_pb2.GetJourneyRequest(journey_id="tenant-journey"))
        assert found.journey.journey_id == "tenant-journey"
        other = client.with_tenant(f"other-{uuid.uuid4().hex[:12]}")
        with pytest.raises(JourneyConversionsError) as caught:
            await other.get_journey(service_pb2.GetJourneyRequest(journey_id="tenant-journey"))
        assert caught.value.code == grpc.StatusCode.NOT_FOUND


class TestErrors:
    """A failed call raises JourneyConversionsError with the status code, the ErrorInfo reason
    and the BadRequest field violations."""

    async def test_an_unknown_journey_is_not_found_with_a_reason(
        self, client: JourneyConversionsClient
    ) -> None:
        with pytest.raises(JourneyConversionsError) as caught:
            await client.get_journey(service_pb2.GetJourneyRequest(journey_id="no-such-journey"))
        error = caught.value
        assert error.code == grpc.StatusCode.NOT_FOUND
        assert error.reason != ""
        assert error.domain == ERROR_DOMAIN
        assert error.field_violations == ()
        assert error.attempts == 1
        assert error.code.name in str(error)

    async def test_an_invalid_touchpoint_lists_its_wrong_fields(
        self, client: JourneyConversionsClient
    ) -> None:
        await define(client, "invalid-journey")
        touchpoint = events_pb2.Touchpoint(event_id="no-contact", journey_id="invalid-journey")
        with pytest.raises(JourneyConversionsError) as caught:
            await client.record_touchpoint(
                service_pb2.RecordTouchpointRequest(touchpoint=touchpoint)
            )
        error = caught.value
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert error.reason != ""
        assert error.domain == ERROR_DOMAIN
        assert error.field_violations, "INVALID_ARGUMENT without field violations"
        for violation in error.field_violations:
            assert violation.field and violation.description, violation
        assert any("contact_id" in v.field for v in error.field_violations), error.field_violations


class TestBatching:
    """Long lists go out in batches of at most 1000 (500 by default), and the results come
    back in order with indices into the whole list."""

    def test_split_batches_cuts_in_order_with_a_short_last_batch(self) -> None:
        batches = split_batches(list(range(1201)))
        assert [len(b) for b in batches] == [500, 500, 201]
        assert [x for b in batches for x in b] == list(range(1201))
        assert split_batches([], 10) == []

    @pytest.mark.parametrize("size", [0, 1001])
    def test_split_batches_refuses_sizes_the_service_does_not_take(self, size: int) -> None:
        with pytest.raises(ValueError, match="batch_size"):
            split_batches([1, 2, 3], size)

    async def test_touchpoints_are_sent_in_batches_with_global_indices(
        self, recorded: tuple[grpc.aio.Channel, RecordingInterceptor], tenant_id: str
    ) -> None:
        channel, interceptor = recorded
        client = JourneyConversionsClient(channel, tenant_id=tenant_id, timeout=60)
        await define(client, "batch-journey")
        rejected = {7, 650, 1200}
        touchpoints = []
        for i in range(1201):
            tp = delivered(f"tp-{i:04d}", "batch-journey", f"contact-{i % 37}")
            if i in rejected:
                tp.contact_id = ""
            touchpoints.append(tp)

        results = await client.record_touchpoints(touchpoints)

        sizes = [
            len(c.request.touchpoints)  # type: ignore[attr-defined]
            for c in interceptor.named("BatchRecordTouchpoints")
        ]
        assert sizes == [500, 500, 201]
        assert [r.index for r in results] == list(range(1201))
        assert [r.event_id for r in results] == [t.event_id for t in touchpoints]
        assert {r.index for r in results if r.status == events_pb2.ITEM_STATUS_REJECTED} == rejected
        for r in results:
            if r.index in rejected:
                # The violation's path names the item's place in the whole list, not the batch.
                assert r.error.code == "INVALID_ARGUMENT", r
                fields = [v.field for v in r.error.field_violations]
                assert fields == [f"touchpoints[{r.index}].contact_id"], r
            else:
                assert r.status == events_pb2.ITEM_STATUS_ACCEPTED, r

        # Sending the list again is safe: what was stored comes back DUPLICATE.
        again = await client.record_touchpoints(touchpoints, batch_size=1000)
        assert [r.index for r in again] == list(range(1201))
        assert {r.index for r in again if r.status == events_pb2.ITEM_STATUS_DUPLICATE} == (
            set(range(1201)) - rejected
        )

    async def test_goal_events_are_sent_in_batches_with_global_indices(
        self, recorded: tuple[grpc.aio.Channel, RecordingInterceptor], tenant_id: str
    ) -> None:
        channel, interceptor = recorded
        client = JourneyConversionsClient(channel, tenant_id=tenant_id)
        now = datetime.now(UTC)
        goal_events = [
            events_pb2.GoalEvent(
                event_id=f"goal-{i}",
                contact_id=f"contact-{i}",
                event_type=journey_pb2.GOAL_EVENT_TYPE_FORM_SUBMITTED,
                form_id="signup",
                occur_time=ts(now - timedelta(minutes=1)),
            )
            for i in range(5)
        ]
        results = await client.record_goal_events(goal_events, batch_size=2)
        assert len(interceptor.named("BatchRecordGoalEvents")) == 3
        assert [(r.index, r.event_id) for r in results] == [(i, f"goal-{i}") for i in range(5)]
        assert {r.status for r in results} == {events_pb2.ITEM_STATUS_ACCEPTED}

    async def test_enrollments_and_exits_are_sent_in_batches_with_global_indices(
        self, recorded: tuple[grpc.aio.Channel, RecordingInterceptor], tenant_id: str
    ) -> None:
        channel, interceptor = recorded
        client = JourneyConversionsClient(channel, tenant_id=tenant_id)
        await define(client, "audience-journey")
        entered = ts(datetime.now(UTC) - timedelta(hours=2))
        enrollments = [
            events_pb2.Enrollment(
                enrollment_id=f"audience-{i}",
                contact_id=f"contact-{i}" if i != 4 else "",
                journey_id="audience-journey" if i != 5 else "no-such-journey",
                version=1,
                enter_time=entered,
            )
            for i in range(7)
        ]

        results = await client.enter_journeys(enrollments, batch_size=3)

        sizes = [
            len(c.request.enrollments)  # type: ignore[attr-defined]
            for c in interceptor.named("BatchEnterJourney")
        ]
        assert sizes == [3, 3, 1]
        assert [(r.index, r.event_id) for r in results] == [(i, f"audience-{i}") for i in range(7)]
        statuses = [r.status for r in results]
        assert statuses == [events_pb2.ITEM_STATUS_ACCEPTED] * 4 + [
            events_pb2.ITEM_STATUS_REJECTED,
            events_pb2.ITEM_STATUS_REJECTED,
            events_pb2.ITEM_STATUS_ACCEPTED,
        ]
        # Renumbered into the whole list: the bad item is the second of the second batch.
        assert [v.field for v in results[4].error.field_violations] == ["enrollments[4].contact_id"]
        assert (results[5].error.code, results[5].error.reason) == (
            "NOT_FOUND",
            "JOURNEY_NOT_FOUND",
        )

        # Sending the list again is safe: what was stored comes back DUPLICATE.
        again = await client.enter_journeys(enrollments)
        assert len(interceptor.named("BatchEnterJourney")) == 4
        assert [r.status for r in again] == [
            events_pb2.ITEM_STATUS_DUPLICATE if s == events_pb2.ITEM_STATUS_ACCEPTED else s
            for s in statuses
        ]

        ended = ts(datetime.now(UTC) - timedelta(hours=1))
        exits = [
            events_pb2.EnrollmentExit(
                enrollment_id=f"audience-{i}",
                exit_time=ended,
                exit_reason=events_pb2.EXIT_REASON_COMPLETED,
            )
            for i in (0, 3, 4, 6)
        ]
        exited = await client.exit_journeys(exits, batch_size=2)
        assert len(interceptor.named("BatchExitJourney")) == 2
        assert [(r.index, r.event_id, r.status) for r in exited] == [
            (0, "audience-0", events_pb2.ITEM_STATUS_ACCEPTED),
            (1, "audience-3", events_pb2.ITEM_STATUS_ACCEPTED),
            (2, "audience-4", events_pb2.ITEM_STATUS_REJECTED),
            (3, "audience-6", events_pb2.ITEM_STATUS_ACCEPTED),
        ]
        assert exited[2].error.reason == "ENROLLMENT_NOT_FOUND"
        got = await client.get_enrollment(
            service_pb2.GetEnrollmentRequest(enrollment_id="audience-3")
        )
        assert got.enrollment.exit_time == ended
        again_exited = await client.exit_journeys(exits, batch_size=1000)
        assert [r.status for r in again_exited] == [
            events_pb2.ITEM_STATUS_DUPLICATE,
            events_pb2.ITEM_STATUS_DUPLICATE,
            events_pb2.ITEM_STATUS_REJECTED,
            events_pb2.ITEM_STATUS_DUPLICATE,
        ]

    async def test_an_empty_list_makes_no_call(
        self, recorded: tuple[grpc.aio.Channel, RecordingInterceptor]
    ) -> None:
        channel, interceptor = recorded
        client = JourneyConversionsClient(channel)
        assert await client.record_touchpoints([]) == []
        assert await client.enter_journeys([]) == []
        assert await client.exit_journeys([]) == []
        assert interceptor.calls == []


class TestRetries:
    """UNAVAILABLE is retried with jittered exponential backoff, within the deadline, and only
    for calls that are safe to repeat."""

    def test_backoff_is_full_jitter_under_an_exponential_ceiling(self) -> None:
        policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0, multiplier=2.0)
        rng = random.Random(4)
        for retry, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
            delays = [policy.backoff(retry, rng) for _ in range(200)]
            assert all(0 <= d <= ceiling for d in delays), (retry, max(delays))
            assert max(delays) > ceiling / 2  # spread over the range, not a constant

    async def test_a_read_is_retried_until_its_attempts_run_out(self) -> None:
        events: list[RetryEvent] = []
        policy = RetryPolicy(max_attempts=4, initial_backoff=0.01, max_backoff=0.02)
        async with JourneyConversionsClient(
            f"127.0.0.1:{closed_port()}", retry=policy, timeout=30, on_retry=events.append
        ) as client:
            with pytest.raises(JourneyConversionsError) as caught:
                await client.get_journey(service_pb2.GetJourneyRequest(journey_id="j"))
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert caught.value.attempts == 4
        assert [(e.method, e.attempt) for e in events] == [("GetJourney", n) for n in (1, 2, 3)]
        assert all(e.error.code == grpc.StatusCode.UNAVAILABLE for e in events)

    async def test_a_write_with_an_event_id_is_retried(self) -> None:
        policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
        async with JourneyConversionsClient(
            f"127.0.0.1:{closed_port()}", retry=policy, timeout=30
        ) as client:
            with pytest.raises(JourneyConversionsError) as caught:
                await client.record_touchpoint(
                    service_pb2.RecordTouchpointRequest(touchpoint=delivered("tp-1", "j", "c"))
                )
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert caught.value.attempts == 3

    async def test_enrollment_batches_are_retried_only_when_every_item_has_its_id(
        self,
    ) -> None:
        policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02)
        now = ts(datetime.now(UTC))

        def entry(enrollment_id: str) -> events_pb2.Enrollment:
            return events_pb2.Enrollment(
                enrollment_id=enrollment_id, contact_id="c", journey_id="j", enter_time=now
            )

        def exit_(enrollment_id: str) -> events_pb2.EnrollmentExit:
            return events_pb2.EnrollmentExit(
                enrollment_id=enrollment_id,
                exit_time=now,
                exit_reason=events_pb2.EXIT_REASON_COMPLETED,
            )

        async with JourneyConversionsClient(
            f"127.0.0.1:{closed_port()}", retry=policy, timeout=30
        ) as client:
            attempts = []
            for call in (
                client.enter_journeys([entry("e1"), entry("e2")]),
                client.enter_journeys([entry("e1"), entry("")]),
                client.exit_journeys([exit_("e1"), exit_("e2")]),
                client.exit_journeys([exit_(""), exit_("e2")]),
            ):
                with pytest.raises(JourneyConversionsError) as caught:
                    await call
                assert caught.value.code == grpc.StatusCode.UNAVAILABLE
                attempts.append(caught.value.attempts)
        assert attempts == [3, 1, 3, 1]

    async def test_a_write_without_an_idempotency_key_is_not_retried(self) -> None:
        policy = RetryPolicy(max_attempts=5, initial_backoff=0.01, max_backoff=0.02)
        async with JourneyConversionsClient(
            f"127.0.0.1:{closed_port()}", retry=policy, timeout=30
        ) as client:
            with pytest.raises(JourneyConversionsError) as caught:
                await client.define_journey(
                    service_pb2.DefineJourneyRequest(journey=email_journey("j"))
                )
            with pytest.raises(JourneyConversionsError) as caught_batch:
                await client.record_touchpoints(
                    [delivered("tp-1", "j", "c"), delivered("", "j", "c")]
                )
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert caught.value.attempts == 1
        assert caught_batch.value.attempts == 1

    async def test_the_deadline_ends_the_retries(self) -> None:
        policy = RetryPolicy(max_attempts=1_000_000, initial_backoff=0.01, max_backoff=0.05)
        async with JourneyConversionsClient(
            f"127.0.0.1:{closed_port()}", retry=policy, timeout=0.5
        ) as client:
            with pytest.raises(JourneyConversionsError) as caught:
                await client.list_journeys(service_pb2.ListJourneysRequest())
        assert caught.value.code in {
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        }
        assert 1 <= caught.value.attempts < 1_000_000

    async def test_a_read_succeeds_once_the_server_becomes_reachable(
        self, service_target: str, tenant_id: str
    ) -> None:
        port = closed_port()
        first_retry = asyncio.Event()
        events: list[RetryEvent] = []

        def on_retry(event: RetryEvent) -> None:
            events.append(event)
            first_retry.set()

        policy = RetryPolicy(max_attempts=10_000, initial_backoff=0.02, max_backoff=0.2)
        async with JourneyConversionsClient(
            f"127.0.0.1:{port}",
            tenant_id=tenant_id,
            retry=policy,
            timeout=60,
            on_retry=on_retry,
            # Let the channel reconnect soon after the port opens, not after grpc's 1 s+.
            channel_options=[
                ("grpc.initial_reconnect_backoff_ms", 50),
                ("grpc.min_reconnect_backoff_ms", 50),
                ("grpc.max_reconnect_backoff_ms", 200),
            ],
        ) as client:
            call = asyncio.create_task(client.list_journeys(service_pb2.ListJourneysRequest()))
            await asyncio.wait_for(first_retry.wait(), 30)
            async with forward(port, service_target):
                response = await call
                await client.channel.close()
        assert list(response.journeys) == []
        assert events and all(e.error.code == grpc.StatusCode.UNAVAILABLE for e in events)


@asynccontextmanager
async def forward(port: int, target: str) -> AsyncIterator[None]:
    """A TCP relay from 127.0.0.1:port to target, for as long as the block runs."""
    host, _, target_port = target.rpartition(":")
    tasks: set[asyncio.Task[None]] = set()

    async def relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(host, int(target_port))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                w.close()
                with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                    await w.wait_closed()

    def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.add(asyncio.create_task(relay(reader, writer)))

    server = await asyncio.start_server(on_connect, "127.0.0.1", port)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        if writer.can_write_eof():
            with contextlib.suppress(ConnectionError, OSError):
                writer.write_eof()
