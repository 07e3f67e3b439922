"""Overload through a real server with small limits: calls beyond the limits in flight (overall
and per tenant) wait briefly, then get RESOURCE_EXHAUSTED (reason OVERLOADED) having done
nothing, while other tenants keep being served; a tenant's open streams are bounded; and the
Python client retries such refusals with backoff until the server has room.

Calls are held in flight deterministically: the test locks the touchpoints table, so every
RecordTouchpoint admitted waits inside its transaction until the test lets go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import pytest
from journeys.conversions.v1 import events_pb2
from journeys.conversions.v1 import service_pb2 as pb
from prometheus_client import REGISTRY

from journey_conversions import config as config_module
from journey_conversions.server import App, build
from journey_conversions_client import JourneyConversionsClient, RetryEvent, RetryPolicy
from tests.builders import ago, define_journey, error_reason, goal, message, tenant, touchpoint
from tests.conftest import DEV_SERVER, touchpoints_locked

if TYPE_CHECKING:
    from tests.builders import Stub

LIMITS = (
    "--max-in-flight",
    "3",
    "--max-in-flight-per-tenant",
    "2",
    "--max-queue-seconds",
    "0.3",
    "--max-streams-per-tenant",
    "2",
)
TENANTS = ("a", "b", "c")
ACCEPTED = events_pb2.ITEM_STATUS_ACCEPTED


@pytest.fixture
async def limited(database_url: str) -> AsyncIterator[App]:
    config = config_module.from_values([*DEV_SERVER, *LIMITS])
    app = await build(config, database_url, "127.0.0.1:0")
    yield app
    await app.stop(grace=1)


@pytest.fixture
async def limited_stub(limited: App) -> AsyncIterator[Stub]:
    from journeys.conversions.v1 import service_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{limited.port}") as channel:
        stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
        for name in TENANTS:
            await stub.DefineJourney(
                define_journey("j", [message("m1")], goal("ORDER_PLACED")), metadata=tenant(name)
            )
        yield stub


def record(stub: Stub, name: str, event_id: str) -> Awaitable[Any]:
    request = pb.RecordTouchpointRequest(
        touchpoint=touchpoint(event_id, "c1", "j", "m1", ago(hours=1))
    )
    return stub.RecordTouchpoint(request, metadata=tenant(name), timeout=30)


async def until(condition: Callable[[], bool]) -> None:
    """Polls the server's in-process counters (nothing to await on), within 10 s."""

    async def wait() -> None:
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), 10)


async def refused(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_reason(caught.value) == "OVERLOADED"
    return caught.value


async def stored(database_url: str, event_id: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval(
            "select count(*) from touchpoints where event_id = $1", event_id
        )
    finally:
        await conn.close()
    assert isinstance(count, int)
    return count


class TestCallsInFlight:
    async def test_limits_per_tenant_and_overall_refuse_without_doing_anything(
        self, limited: App, limited_stub: Stub, database_url: str
    ) -> None:
        admission = limited.servicer.admission
        async with touchpoints_locked(database_url):
            held = [asyncio.ensure_future(record(limited_stub, "a", f"a{i}")) for i in range(2)]
            await until(lambda: admission.running == 2)
            # a is at its own limit; b still gets the last slot overall.
            await refused(record(limited_stub, "a", "a-refused"))
            await limited_stub.ListJourneys(pb.ListJourneysRequest(), metadata=tenant("b"))
            held.append(asyncio.ensure_future(record(limited_stub, "b", "b0")))
            await until(lambda: admission.running == 3)
            # Every slot is taken: c is refused too, reads included.
            await refused(limited_stub.ListJourneys(pb.ListJourneysRequest(), metadata=tenant("c")))
        await asyncio.gather(*held)  # the calls held in flight all succeed
        assert admission.running == 0
        assert await stored(database_url, "a-refused") == 0
        assert [await stored(database_url, e) for e in ("a0", "a1", "b0")] == [1, 1, 1]
        await limited_stub.ListJourneys(pb.ListJourneysRequest(), metadata=tenant("c"))

    async def test_a_call_waits_for_a_slot_within_the_queue_time(
        self, limited: App, limited_stub: Stub, database_url: str
    ) -> None:
        admission = limited.servicer.admission
        lock = touchpoints_locked(database_url)
        await lock.__aenter__()
        try:
            held = [asyncio.ensure_future(record(limited_stub, "a", f"a{i}")) for i in range(2)]
            await until(lambda: admission.running == 2)
            waiting = asyncio.ensure_future(
                limited_stub.ListJourneys(pb.ListJourneysRequest(), metadata=tenant("a"))
            )
            await asyncio.sleep(0.05)
        finally:
            await lock.__aexit__(None, None, None)  # the held calls finish, freeing slots
        await asyncio.gather(*held)
        await waiting  # admitted once a slot freed, before its queue time ran out


class TestStreams:
    async def test_a_tenant_keeps_a_bounded_number_of_streams_open(
        self, limited: App, limited_stub: Stub
    ) -> None:
        admission = limited.servicer.admission

        def open_stream(name: str) -> Any:
            return limited_stub.StreamConversionEvents(
                pb.StreamConversionEventsRequest(), metadata=tenant(name), timeout=30
            )

        first, second = open_stream("a"), open_stream("a")
        await until(lambda: admission.open_streams("a") == 2)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in open_stream("a"):
                pass
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error_reason(caught.value) == "OVERLOADED"
        other = open_stream("b")  # another tenant is not affected
        await until(lambda: admission.open_streams("b") == 1)
        first.cancel()
        await until(lambda: admission.open_streams("a") == 1)
        again = open_stream("a")  # room again
        await until(lambda: admission.open_streams("a") == 2)
        for stream in (second, other, again):
            stream.cancel()
        await until(lambda: admission.open_streams("a") == admission.open_streams("b") == 0)


def in_stream(name: str, index: int) -> pb.StreamIngestRequest:
    """StreamIngest message `index`: the touchpoint `<name><index>`."""
    item = touchpoint(f"{name}{index}", "c1", "j", "m1", ago(hours=1))
    return pb.StreamIngestRequest(
        sequence=index, touchpoints=pb.BatchRecordTouchpointsRequest(touchpoints=[item])
    )


async def answer(call: Any) -> pb.StreamIngestResponse:
    item = await call.read()
    assert isinstance(item, pb.StreamIngestResponse)
    return item


def refusals() -> float:
    return REGISTRY.get_sample_value("jc_overload_rejections_total", {"limit": "in_flight"}) or 0


class TestStreamIngest:
    async def test_a_message_beyond_the_limits_is_refused_and_the_stream_goes_on(
        self, limited: App, limited_stub: Stub, database_url: str
    ) -> None:
        """Each message of a stream takes a slot of the calls in flight while it is written,
        as a batch call does: beyond its tenant's limit it waits, then is refused OVERLOADED
        in its own response, having done nothing, and the stream goes on."""
        admission = limited.servicer.admission
        refused_before = refusals()
        call = limited_stub.StreamIngest(metadata=tenant("a"), timeout=30)
        await call.initial_metadata()
        async with touchpoints_locked(database_url):
            for index in range(4):
                await call.write(in_stream("a", index))
            # a's limit is 2: messages 0 and 1 are held by the lock, 2 and 3 are refused.
            await until(lambda: admission.running == 2 and refusals() == refused_before + 2)
        answers = [await answer(call) for _ in range(4)]
        assert [a.sequence for a in answers] == [0, 1, 2, 3]
        assert [[r.status for r in a.results] for a in answers[:2]] == [[ACCEPTED]] * 2
        assert [(a.error.code, a.error.reason) for a in answers[2:]] == [
            ("RESOURCE_EXHAUSTED", "OVERLOADED")
        ] * 2
        await call.write(in_stream("a", 4))  # room again
        assert [r.status for r in (await answer(call)).results] == [ACCEPTED]
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK
        assert [await stored(database_url, f"a{i}") for i in range(5)] == [1, 1, 0, 0, 1]


class TestClientRetries:
    async def test_the_client_retries_overload_until_there_is_room(
        self, limited: App, limited_stub: Stub, database_url: str
    ) -> None:
        admission = limited.servicer.admission
        retries: list[RetryEvent] = []
        async with JourneyConversionsClient(
            f"127.0.0.1:{limited.port}",
            tenant_id="a",
            timeout=20,
            retry=RetryPolicy(max_attempts=50, initial_backoff=0.05, max_backoff=0.2),
            on_retry=retries.append,
        ) as client:
            lock = touchpoints_locked(database_url)
            await lock.__aenter__()
            try:
                held = [asyncio.ensure_future(record(limited_stub, "a", f"a{i}")) for i in range(2)]
                await until(lambda: admission.running == 2)
                # A definition without request_id: not idempotent, yet safe to retry after an
                # OVERLOADED refusal, since the server did nothing.
                retried = asyncio.ensure_future(
                    client.define_journey(
                        define_journey("k", [message("m1")], goal("ORDER_PLACED"))
                    )
                )
                await until(lambda: len(retries) >= 2)
            finally:
                await lock.__aexit__(None, None, None)
            await asyncio.gather(*held)
            await retried
            listed = await client.list_journeys(pb.ListJourneysRequest())
        assert sorted(j.journey_id for j in listed.journeys) == ["j", "k"]
        assert {r.error.code for r in retries} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert {r.error.reason for r in retries} == {"OVERLOADED"}

    async def test_the_client_does_not_retry_a_message_too_large(self, limited: App) -> None:
        retries: list[RetryEvent] = []
        async with JourneyConversionsClient(
            f"127.0.0.1:{limited.port}", tenant_id="a", timeout=20, on_retry=retries.append
        ) as client:
            huge = define_journey("j2", [message("m1")], goal("ORDER_PLACED"))
            huge.journey.display_name = "x" * (17 * 1024 * 1024)
            huge.request_id = "def-huge"
            with pytest.raises(Exception) as caught:
                await client.define_journey(huge)
        assert getattr(caught.value, "code", None) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert retries == []


class TestDraining:
    async def test_a_draining_server_refuses_and_the_client_retries_elsewhere_or_later(
        self, limited: App, limited_stub: Stub
    ) -> None:
        """While the server drains before stopping, every new call is refused UNAVAILABLE
        (SHUTTING_DOWN) having done nothing, so the client retries it, idempotent or not."""
        limited.servicer.stopping.set()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await limited_stub.ListJourneys(pb.ListJourneysRequest(), metadata=tenant("a"))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert error_reason(caught.value) == "SHUTTING_DOWN"

        retries: list[RetryEvent] = []
        async with JourneyConversionsClient(
            f"127.0.0.1:{limited.port}",
            tenant_id="a",
            timeout=20,
            retry=RetryPolicy(max_attempts=50, initial_backoff=0.05, max_backoff=0.2),
            on_retry=retries.append,
        ) as client:
            # No request_id: not idempotent, yet retried, since the server started nothing.
            defined = asyncio.ensure_future(
                client.define_journey(define_journey("k", [message("m1")], goal("ORDER_PLACED")))
            )
            await until(lambda: len(retries) >= 2)
            limited.servicer.stopping.clear()  # (a stand-in for another replica answering)
            await defined
        assert {r.error.reason for r in retries} == {"SHUTTING_DOWN"}
