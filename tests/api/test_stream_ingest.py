"""StreamIngest through the real server: batches of every kind on one stream, each answered in
order after COMMIT with what its Batch RPC answers; refused messages that do not end the
stream; messages applied as if one at a time; flow control that stops the server reading while
4 messages are unanswered; half-close, cancellation and shutdown; and who may call.

Writes are held in flight deterministically: the test locks the touchpoints table, so a
message of touchpoints waits inside its transaction until the test lets go."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import pytest
from journeys.conversions.v1 import events_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb
from prometheus_client import REGISTRY

from journey_conversions import config as config_module
from journey_conversions.keys import Scope
from journey_conversions.parse import MAX_BATCH
from journey_conversions.server import App, build
from journey_conversions.servicer.streaming import IN_FLIGHT
from tests.builders import (
    ago,
    define_journey,
    enter,
    error_reason,
    field_violations,
    goal,
    goal_event,
    message,
    tenant,
    touchpoint,
)
from tests.conftest import DEV_SERVER, KEY_RECHECK_SECONDS, touchpoints_locked
from tests.keys import bearer, create_key, revoke_key

if TYPE_CHECKING:
    from tests.builders import Stub

Metadata = tuple[tuple[str, str], ...]

# --- messages ---------------------------------------------------------------------------------


def touchpoints(sequence: int, *items: events_pb2.Touchpoint) -> pb.StreamIngestRequest:
    return pb.StreamIngestRequest(
        sequence=sequence, touchpoints=pb.BatchRecordTouchpointsRequest(touchpoints=items)
    )


def goal_events(sequence: int, *items: events_pb2.GoalEvent) -> pb.StreamIngestRequest:
    return pb.StreamIngestRequest(
        sequence=sequence, goal_events=pb.BatchRecordGoalEventsRequest(goal_events=items)
    )


def entries(sequence: int, *items: events_pb2.Enrollment) -> pb.StreamIngestRequest:
    return pb.StreamIngestRequest(
        sequence=sequence, enrollments=pb.BatchEnterJourneyRequest(enrollments=items)
    )


def exits(sequence: int, *enrollment_ids: str, hours_ago: float = 1) -> pb.StreamIngestRequest:
    items = [
        events_pb2.EnrollmentExit(
            enrollment_id=e,
            exit_time=ago(hours=hours_ago),
            exit_reason=events_pb2.EXIT_REASON_COMPLETED,
        )
        for e in enrollment_ids
    ]
    return pb.StreamIngestRequest(sequence=sequence, exits=pb.BatchExitJourneyRequest(exits=items))


def entry(
    enrollment_id: str, contact_id: str, journey_id: str = "welcome"
) -> events_pb2.Enrollment:
    return enter(enrollment_id, contact_id, journey_id, ago(days=2)).enrollment


def delivered(event_id: str, contact_id: str, **fields: Any) -> events_pb2.Touchpoint:
    return touchpoint(event_id, contact_id, "welcome", "email-1", ago(hours=3), **fields)


def order(event_id: str, contact_id: str, hours_ago: float = 1) -> events_pb2.GoalEvent:
    return goal_event(event_id, contact_id, "ORDER_PLACED", ago(hours=hours_ago))


async def batch_answer(
    stub: Stub, request: pb.StreamIngestRequest, metadata: Metadata
) -> list[events_pb2.ItemResult]:
    """What the Batch RPC of the message's kind answers for its batch."""
    kind = request.WhichOneof("batch")
    reply: Any
    if kind == "touchpoints":
        reply = await stub.BatchRecordTouchpoints(request.touchpoints, metadata=metadata)
    elif kind == "goal_events":
        reply = await stub.BatchRecordGoalEvents(request.goal_events, metadata=metadata)
    elif kind == "enrollments":
        reply = await stub.BatchEnterJourney(request.enrollments, metadata=metadata)
    else:
        reply = await stub.BatchExitJourney(request.exits, metadata=metadata)
    return list(reply.results)


def statuses(response: pb.StreamIngestResponse) -> list[str]:
    return [
        events_pb2.ItemStatus.Name(r.status).removeprefix("ITEM_STATUS_") for r in response.results
    ]


# --- streams ----------------------------------------------------------------------------------


@dataclass
class Ended:
    """What a stream answered before it ended, and how it ended (None: OK)."""

    responses: list[pb.StreamIngestResponse]
    error: grpc.aio.AioRpcError | None


Stream = Any  # grpc.aio.StreamStreamCall[pb.StreamIngestRequest, pb.StreamIngestResponse]


async def opened(stub: Stub, metadata: Metadata = ()) -> Stream:
    """A stream the server accepted (it sends its headers once the caller is checked): writing
    before that could race a refusal, which grpc's Python client reports as INTERNAL."""
    call = stub.StreamIngest(metadata=metadata, timeout=60)
    await call.initial_metadata()
    return call


async def read_to_end(call: Stream) -> Ended:
    responses: list[pb.StreamIngestResponse] = []
    try:
        while (item := await call.read()) is not grpc.aio.EOF:
            responses.append(item)
    except grpc.aio.AioRpcError as error:
        return Ended(responses, error)
    return Ended(responses, None)


async def exchange(stub: Stub, *requests: pb.StreamIngestRequest, metadata: Metadata = ()) -> Ended:
    """Writes every request, half-closes, and reads to the end of the stream."""
    call = await opened(stub, metadata)
    if not call.done():
        for request in requests:
            await call.write(request)
        await call.done_writing()
    return await read_to_end(call)


def sequences(ended: Ended) -> list[int]:
    return [r.sequence for r in ended.responses]


def unanswered() -> float:
    """jc_stream_ingest_unanswered: messages the server has read and not answered."""
    value = REGISTRY.get_sample_value("jc_stream_ingest_unanswered")
    assert value is not None
    return value


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    """Polls the condition within 20 s."""

    async def wait() -> None:
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), 20)


async def waiting_on_the_lock(database_url: str) -> int:
    """Server transactions of the test's database waiting for a lock (touchpoints_locked)."""
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval(
            "select count(*) from pg_stat_activity"
            " where datname = current_database() and wait_event_type = 'Lock'"
        )
    finally:
        await conn.close()
    assert isinstance(count, int)
    return count


async def stored_touchpoints(database_url: str, event_ids: Sequence[str]) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "select event_id from touchpoints where event_id = any($1::text[])", list(event_ids)
        )
    finally:
        await conn.close()
    return {r["event_id"] for r in rows}


@pytest.fixture
async def welcome(stub: Stub) -> None:
    """Journey "welcome" in the default tenant: goal "order placed", an email and an SMS."""
    await stub.DefineJourney(
        define_journey(
            "welcome", [message("email-1"), message("sms-1", "SMS")], goal("ORDER_PLACED")
        )
    )


# --- answers ----------------------------------------------------------------------------------


class TestAnswers:
    """Each message gets what its Batch RPC would answer, in request order, with its sequence."""

    async def test_mixed_kinds_get_their_batch_rpcs_answers_in_order(self, stub: Stub) -> None:
        stream, batches = tenant("by-stream"), tenant("by-batch")
        for md in (stream, batches):
            await stub.DefineJourney(
                define_journey("welcome", [message("email-1")], goal("ORDER_PLACED")), metadata=md
            )
        requests = [
            entries(10, entry("e1", "c1"), entry("e2", "c2", "nowhere"), entry("e1", "c1")),
            touchpoints(
                3,
                delivered("t1", "c1", action="CLICKED"),
                delivered("t2", "c1", action="READ"),
                touchpoint("t3", "c1", "welcome", "email-9", ago(hours=2)),
            ),
            goal_events(99, order("g1", "c1"), events_pb2.GoalEvent(event_id="g2")),
            exits(4, "e1", "nobody"),
            touchpoints(0, delivered("t1", "c1", action="CLICKED")),
        ]
        ended = await exchange(stub, *requests, metadata=stream)

        assert ended.error is None
        assert sequences(ended) == [10, 3, 99, 4, 0]
        assert [statuses(r) for r in ended.responses] == [
            ["ACCEPTED", "REJECTED", "DUPLICATE"],
            ["ACCEPTED", "REJECTED", "REJECTED"],
            ["ACCEPTED", "REJECTED"],
            ["ACCEPTED", "REJECTED"],
            ["DUPLICATE"],
        ]
        assert [(i.error.code, i.error.reason) for i in ended.responses[3].results[1:]] == [
            ("NOT_FOUND", "ENROLLMENT_NOT_FOUND")
        ]
        assert [v.field for v in ended.responses[1].results[1].error.field_violations] == [
            "touchpoints[1].action"
        ]
        assert not any(r.HasField("error") for r in ended.responses)
        # Item for item what the Batch RPCs answer for the same batches in another tenant.
        assert [list(r.results) for r in ended.responses] == [
            await batch_answer(stub, request, batches) for request in requests
        ]
        awards = await stub.ListConversionAwards(
            pb.ListConversionAwardsRequest(journey_id="welcome"), metadata=stream
        )
        assert [(a.enrollment_id, a.goal_event_id) for a in awards.awards] == [("e1", "g1")]

    @pytest.mark.usefixtures("welcome")
    async def test_repeating_the_stream_changes_nothing(self, stub: Stub) -> None:
        requests = [
            entries(1, entry("e1", "c1"), entry("e2", "c2")),
            touchpoints(2, delivered("t1", "c1"), delivered("t2", "c2")),
            goal_events(3, order("g1", "c1"), order("g2", "c2")),
            exits(4, "e2", hours_ago=0.5),
        ]
        first = await exchange(stub, *requests)
        assert [set(statuses(r)) for r in first.responses] == [{"ACCEPTED"}] * 4
        awards = pb.ListConversionAwardsRequest(journey_id="welcome")
        # A fixed range, so that equal data gives equal reports.
        report = pb.GetJourneyReportRequest(
            journey_id="welcome", start_time=ago(days=30), end_time=ago(days=-1)
        )
        before = (await stub.ListConversionAwards(awards), await stub.GetJourneyReport(report))
        assert [a.enrollment_id for a in before[0].awards] == ["e1", "e2"]

        again = await exchange(stub, *requests)
        assert again.error is None
        assert [set(statuses(r)) for r in again.responses] == [{"DUPLICATE"}] * 4
        after = (await stub.ListConversionAwards(awards), await stub.GetJourneyReport(report))
        assert after == before

    @pytest.mark.usefixtures("welcome")
    async def test_a_refused_message_gets_its_error_and_the_stream_goes_on(
        self, stub: Stub, database_url: str
    ) -> None:
        too_many = [delivered(f"x{n}", "c1") for n in range(MAX_BATCH + 1)]
        ended = await exchange(
            stub,
            touchpoints(1, delivered("t1", "c1")),
            pb.StreamIngestRequest(sequence=2),
            touchpoints(3),
            touchpoints(4, *too_many),
            exits(5),
            touchpoints(6, delivered("t2", "c1")),
        )
        assert ended.error is None
        assert sequences(ended) == [1, 2, 3, 4, 5, 6]
        refused = ended.responses[1:5]
        assert [(r.error.code, r.error.reason) for r in refused] == [
            ("INVALID_ARGUMENT", "INVALID_ARGUMENT")
        ] * 4
        assert [[v.field for v in r.error.field_violations] for r in refused] == [
            ["batch"],
            ["touchpoints"],
            ["touchpoints"],
            ["exits"],
        ]
        assert all(not r.results for r in refused)
        assert [statuses(r) for r in (ended.responses[0], ended.responses[5])] == [["ACCEPTED"]] * 2
        assert await stored_touchpoints(database_url, ["t1", "t2", "x0"]) == {"t1", "t2"}

    @pytest.mark.usefixtures("welcome")
    async def test_an_answered_message_is_committed(self, stub: Stub) -> None:
        """Each answer is read back through other calls while the stream stays open."""
        call = await opened(stub)
        await call.write(entries(1, entry("e1", "c1")))
        assert statuses(await call.read()) == ["ACCEPTED"]
        got = await stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id="e1"))
        assert got.enrollment == entry("e1", "c1")

        await call.write(touchpoints(2, delivered("t1", "c1", action="CLICKED")))
        assert statuses(await call.read()) == ["ACCEPTED"]
        await call.write(goal_events(3, order("g1", "c1")))
        assert statuses(await call.read()) == ["ACCEPTED"]
        explained = await stub.ExplainGoalEvent(pb.ExplainGoalEventRequest(event_id="g1"))
        assert [c.touchpoint_event_id for c in explained.explanation.candidates] == ["t1"]
        awards = await stub.ListConversionAwards(
            pb.ListConversionAwardsRequest(journey_id="welcome")
        )
        assert [(a.enrollment_id, a.goal_event_id) for a in awards.awards] == [("e1", "g1")]

        await call.done_writing()
        assert await read_to_end(call) == Ended([], None)


@pytest.mark.usefixtures("welcome")
class TestStreamOrder:
    """Messages written at once apply as if one at a time, in stream order."""

    async def test_exits_sent_right_after_their_entries_find_them(self, stub: Stub) -> None:
        ids = [f"e{n}" for n in range(50)]
        ended = await exchange(
            stub,
            entries(1, *(entry(e, f"c{n}") for n, e in enumerate(ids))),
            exits(2, *ids),
            entries(3, *(entry(f"f{n}", f"c{n}") for n in range(50))),
            exits(4, *(f"f{n}" for n in range(50))),
        )
        assert ended.error is None
        assert [set(statuses(r)) for r in ended.responses] == [{"ACCEPTED"}] * 4

    async def test_the_first_payload_of_a_reused_id_wins(self, stub: Stub) -> None:
        ended = await exchange(
            stub,
            goal_events(1, order("g1", "c1", hours_ago=1)),
            goal_events(2, order("g1", "c1", hours_ago=2)),
            touchpoints(3, delivered("t1", "c1")),
            touchpoints(4, delivered("t1", "c2")),
        )
        assert [statuses(r) for r in ended.responses] == [
            ["ACCEPTED"],
            ["REJECTED"],
            ["ACCEPTED"],
            ["REJECTED"],
        ]
        for refused in (ended.responses[1], ended.responses[3]):
            assert refused.results[0].error.reason == "IDEMPOTENCY_KEY_REUSED"


# --- flow control and endings -----------------------------------------------------------------


def one_touchpoint(index: int) -> pb.StreamIngestRequest:
    """Message `index`: a touchpoint of a contact of its own (no two wait on one lock)."""
    return touchpoints(index, delivered(f"t{index}", f"c{index}"))


@pytest.mark.usefixtures("welcome")
class TestFlowControl:
    """While IN_FLIGHT messages are unanswered the server reads no further: HTTP/2 flow control
    holds the client back, and nothing piles up in the server."""

    async def test_a_stalled_database_stops_the_server_reading(
        self, stub: Stub, app: App, database_url: str
    ) -> None:
        before = unanswered()
        count = 3 * IN_FLIGHT
        call = await opened(stub)

        async def write_all() -> None:
            for index in range(count):
                await call.write(one_touchpoint(index))
            await call.done_writing()

        async with touchpoints_locked(database_url):
            writer = asyncio.ensure_future(write_all())  # never reads a response meanwhile

            async def in_flight() -> bool:
                return await waiting_on_the_lock(database_url) == IN_FLIGHT

            await until(in_flight)
            # IN_FLIGHT messages are being written, and none beyond them has been read.
            assert unanswered() - before == IN_FLIGHT
            assert app.servicer.admission.running == IN_FLIGHT
            assert await waiting_on_the_lock(database_url) == IN_FLIGHT
        ended = await read_to_end(call)
        await writer
        assert ended.error is None
        assert sequences(ended) == list(range(count))
        assert [statuses(r) for r in ended.responses] == [["ACCEPTED"]] * count
        assert unanswered() == before


@pytest.mark.usefixtures("welcome")
class TestEndings:
    """Half-close, cancellation, shutdown and bad bytes end a stream cleanly."""

    async def test_half_close_finishes_the_messages_in_flight(
        self, stub: Stub, database_url: str
    ) -> None:
        call = await opened(stub)
        async with touchpoints_locked(database_url):
            for index in range(IN_FLIGHT):
                await call.write(one_touchpoint(index))
            await call.done_writing()

            async def in_flight() -> bool:
                return await waiting_on_the_lock(database_url) == IN_FLIGHT

            await until(in_flight)
        ended = await read_to_end(call)
        assert ended.error is None
        assert sequences(ended) == list(range(IN_FLIGHT))
        assert [statuses(r) for r in ended.responses] == [["ACCEPTED"]] * IN_FLIGHT
        written = [f"t{i}" for i in range(IN_FLIGHT)]
        assert await stored_touchpoints(database_url, written) == set(written)

    async def test_a_cancelled_stream_leaves_each_message_whole_or_absent(
        self, stub: Stub, app: App, database_url: str
    ) -> None:
        before = unanswered()
        ids = [[f"t{m}-{i}" for i in range(3)] for m in range(IN_FLIGHT)]
        call = await opened(stub)
        async with touchpoints_locked(database_url):
            for m, message_ids in enumerate(ids):
                await call.write(touchpoints(m, *(delivered(e, f"c{m}") for e in message_ids)))

            async def in_flight() -> bool:
                return await waiting_on_the_lock(database_url) == IN_FLIGHT

            await until(in_flight)
            call.cancel()

            async def stopped() -> bool:
                return unanswered() == before and app.servicer.admission.running == 0

            await until(stopped)  # the writes were abandoned while the lock still held them
        for message_ids in ids:
            assert await stored_touchpoints(database_url, message_ids) in (set(), set(message_ids))
        ended = await exchange(stub, one_touchpoint(9))  # the server serves on
        assert [statuses(r) for r in ended.responses] == [["ACCEPTED"]]

    async def test_bytes_that_are_not_a_request_end_the_stream_after_the_earlier_answers(
        self, channel: grpc.aio.Channel
    ) -> None:
        raw: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
            "/journeys.conversions.v1.JourneyConversionsService/StreamIngest",
            request_serializer=None,
            response_deserializer=None,
        )
        call = raw(timeout=30)
        await call.initial_metadata()
        await call.write(one_touchpoint(1).SerializeToString())
        await call.write(b"\xff\xff\xff")
        await call.done_writing()
        answers = []
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            while isinstance(item := await call.read(), bytes):
                answers.append(pb.StreamIngestResponse.FromString(item))
        assert [a.sequence for a in answers] == [1]
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_reason(caught.value) == "MALFORMED_REQUEST"
        assert "journeys.conversions.v1.StreamIngestRequest" in (caught.value.details() or "")


async def test_shutdown_answers_the_messages_in_flight_then_ends_unavailable(
    database_url: str,
) -> None:
    running = await build(config_module.from_values(DEV_SERVER), database_url, "127.0.0.1:0")
    stopping: asyncio.Future[None] | None = None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
            await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
            call = await opened(stub)
            async with touchpoints_locked(database_url):
                await call.write(one_touchpoint(1))
                await call.write(one_touchpoint(2))

                async def in_flight() -> bool:
                    return await waiting_on_the_lock(database_url) == 2

                await until(in_flight)
                stopping = asyncio.ensure_future(running.stop(grace=20))
                await asyncio.wait_for(running.servicer.stopping.wait(), 20)
            ended = await read_to_end(call)
    finally:
        if stopping is None:
            await running.stop(grace=1)
        else:
            await stopping
    assert sequences(ended) == [1, 2]
    assert [statuses(r) for r in ended.responses] == [["ACCEPTED"]] * 2
    assert ended.error is not None
    assert ended.error.code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(ended.error) == "SHUTTING_DOWN"


# --- who may call -----------------------------------------------------------------------------


class TestCallers:
    """The caller is checked as for every RPC: at the start, and again for every message."""

    async def test_without_a_key_the_stream_is_unauthenticated(self, keyed_stub: Stub) -> None:
        ended = await exchange(keyed_stub, exits(1, "e1"))
        assert ended.responses == []
        assert ended.error is not None
        assert ended.error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_reason(ended.error) == "API_KEY_MISSING"

    async def test_a_read_key_may_not_write(self, keyed_stub: Stub, database_url: str) -> None:
        _, token = await create_key(database_url, "acme", Scope.READ)
        ended = await exchange(keyed_stub, exits(1, "e1"), metadata=bearer(token))
        assert ended.error is not None
        assert ended.error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(ended.error) == "SCOPE_INSUFFICIENT"

    async def test_a_revoked_key_ends_an_open_stream(
        self, keyed_stub: Stub, database_url: str
    ) -> None:
        key_id, token = await create_key(database_url, "acme", Scope.WRITE)
        call = await opened(keyed_stub, bearer(token))
        await call.write(exits(1, "e1"))
        first = await call.read()
        assert (first.sequence, statuses(first)) == (1, ["REJECTED"])  # no such enrollment
        await revoke_key(database_url, key_id)
        await asyncio.sleep(KEY_RECHECK_SECONDS + 0.3)
        await call.write(exits(2, "e1"))
        ended = await read_to_end(call)
        assert ended.responses == []
        assert ended.error is not None
        assert ended.error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_reason(ended.error) == "API_KEY_INVALID"

    async def test_the_tenant_is_the_callers(self, stub: Stub) -> None:
        acme, globex = tenant("acme"), tenant("globex")
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]), metadata=acme)
        ended = await exchange(stub, entries(1, entry("e1", "c1")), metadata=acme)
        assert [statuses(r) for r in ended.responses] == [["ACCEPTED"]]
        await stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id="e1"), metadata=acme)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id="e1"), metadata=globex)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    async def test_a_malformed_tenant_header_is_invalid_as_for_unary_calls(
        self, stub: Stub
    ) -> None:
        ended = await exchange(stub, exits(1, "e1"), metadata=(("x-tenant-id", "bad tenant!"),))
        assert ended.error is not None
        assert ended.error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(ended.error)) == ["x-tenant-id"]
