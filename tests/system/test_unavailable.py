"""A server whose database goes away answers UNAVAILABLE, which tells clients to retry, never
INTERNAL; and it serves again once the database is back."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
from grpc_health.v1._async import HealthServicer
from journeys.conversions.v1 import service_pb2 as pb
from journeys.conversions.v1 import service_pb2_grpc

from journey_conversions import config as config_module
from journey_conversions.db_watch import DatabaseWatch, notice_unavailable
from journey_conversions.server import SERVICE_NAME, App, build
from tests.builders import ago, define_journey, enter, error_reason, message, touchpoint
from tests.conftest import admin_execute
from tests.processes import health

if TYPE_CHECKING:
    from tests.builders import Stub


@pytest.fixture
async def cut_off(postgres_url: str, database_url: str) -> AsyncIterator[None]:
    """The server's database refuses connections and its open ones are terminated; it lets
    them in again afterwards, so the database can be dropped."""
    name = urlsplit(database_url).path.lstrip("/")
    await admin_execute(
        postgres_url,
        f'alter database "{name}" allow_connections false',
        "select pg_terminate_backend(pid) from pg_stat_activity"
        f" where datname = '{name}' and pid <> pg_backend_pid()",
    )
    yield
    await admin_execute(postgres_url, f'alter database "{name}" allow_connections true')


async def assert_unavailable(call: object) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
    assert error_reason(caught.value) == "DATABASE_UNAVAILABLE"


class TestDatabaseRefusesConnections:
    """Reads and writes fail with UNAVAILABLE while the database refuses connections."""

    @pytest.fixture(autouse=True)
    async def journey(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
        await stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=1)))

    @pytest.mark.usefixtures("cut_off")
    async def test_writes_and_reads_are_unavailable(self, stub: Stub) -> None:
        record = pb.RecordTouchpointRequest(
            touchpoint=touchpoint("t1", "c1", "welcome", "email-1", ago(hours=1))
        )
        batch = pb.BatchRecordTouchpointsRequest(touchpoints=[record.touchpoint])
        for call in (
            stub.RecordTouchpoint(record),
            stub.BatchRecordTouchpoints(batch),
            stub.DefineJourney(define_journey("other", [message("m")])),
            stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome")),
            stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id="e1")),
            stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="welcome")),
        ):
            await assert_unavailable(call)

    @pytest.mark.usefixtures("cut_off")
    async def test_stream_ingest_ends_unavailable(self, stub: Stub) -> None:
        """Its credentials need no database (development auth): the first message finds it
        away, and the stream ends as a unary call would."""
        call = stub.StreamIngest(timeout=30)
        await call.initial_metadata()
        item = touchpoint("t1", "c1", "welcome", "email-1", ago(hours=1))
        await call.write(
            pb.StreamIngestRequest(
                sequence=1, touchpoints=pb.BatchRecordTouchpointsRequest(touchpoints=[item])
            )
        )
        await call.done_writing()
        await assert_unavailable(call.read())


async def terminate_backends(postgres_url: str, database_url: str) -> None:
    """What a Postgres restart or failover does to the server's pooled connections."""
    name = urlsplit(database_url).path.lstrip("/")
    await admin_execute(
        postgres_url,
        "select pg_terminate_backend(pid) from pg_stat_activity"
        f" where datname = '{name}' and pid <> pg_backend_pid()",
    )


class TestConnectionsTerminated:
    """Pooled connections killed under the server give retryable errors, then service again."""

    @pytest.fixture(autouse=True)
    async def journey(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))

    async def test_calls_right_after_the_termination_are_ok_or_unavailable(
        self, stub: Stub, postgres_url: str, database_url: str
    ) -> None:
        codes: set[grpc.StatusCode] = set()
        # The failure is a race; enough rounds make it show, and the first one ends the test.
        for _ in range(40):
            await terminate_backends(postgres_url, database_url)
            results = await asyncio.gather(
                *(stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome")) for _ in range(8)),
                return_exceptions=True,
            )
            codes |= {
                r.code() if isinstance(r, grpc.aio.AioRpcError) else grpc.StatusCode.OK
                for r in results
            }
            if not codes <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}:
                break
        assert codes <= {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}

    async def test_server_serves_again_after_the_termination(
        self, stub: Stub, postgres_url: str, database_url: str
    ) -> None:
        await terminate_backends(postgres_url, database_url)
        record = pb.RecordTouchpointRequest(
            touchpoint=touchpoint("t1", "c1", "welcome", "email-1", ago(hours=1))
        )
        for _ in range(10):  # each broken pooled connection may fail one call
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stub.RecordTouchpoint(record)
                break
        got = await stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="welcome"))
        (email,) = got.report.messages
        assert [c.count for c in email.touchpoints] == [1]


class Proxy:
    """A TCP proxy in front of Postgres (TCP or Unix socket) that can be cut like a network."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        self.unix_path = f"{socket_dir}/.s.PGSQL.{parts.port or 5432}" if socket_dir else None
        self.address = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.holed = False  # accepts and reads, but nothing gets through either way

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)
        port = self.server.sockets[0].getsockname()[1]
        assert isinstance(port, int)
        self.port = port
        return port

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.holed:
            self.writers.add(writer)
            while await reader.read(65536):
                pass
            return
        if self.unix_path:
            up_reader, up_writer = await asyncio.open_unix_connection(self.unix_path)
        else:
            up_reader, up_writer = await asyncio.open_connection(*self.address)
        self.writers |= {writer, up_writer}
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                if not self.holed:
                    sink.write(data)
                    await sink.drain()
        finally:
            sink.close()

    async def cut(self) -> None:
        """Refuses new connections and drops the open ones."""
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            writer.transport.abort()
        await self.server.wait_closed()

    def black_hole(self) -> None:
        """Packets are dropped: connections stay open, and nothing answers."""
        self.holed = True

    async def restore(self) -> None:
        """The network is back; connections that lived through the outage are broken."""
        self.holed = False
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        if self.server is None or not self.server.is_serving():
            await self.start()


@pytest.fixture
async def proxied(database_url: str) -> AsyncIterator[tuple[App, Proxy]]:
    """A server whose only way to its database is a proxy the test can cut."""
    proxy = Proxy(database_url)
    port = await proxy.start()
    parts = urlsplit(database_url)
    user = parts.username or "postgres"
    password = f":{parts.password}" if parts.password else ""
    url = urlunsplit(parts._replace(netloc=f"{user}{password}@127.0.0.1:{port}", query=""))
    config = config_module.from_values(
        ["--pool-min-size", "2", "--pool-max-size", "4", "--auth", "dev"]
    )
    app = await build(config, url, "127.0.0.1:0")
    yield app, proxy
    with contextlib.suppress(Exception):
        await proxy.cut()
    await app.stop(grace=1)


class TestNetworkToDatabaseLost:
    """Lost connections and refused reconnects are UNAVAILABLE, for writes and reads."""

    async def test_writes_and_reads_are_unavailable_once_the_network_is_cut(
        self, proxied: tuple[App, Proxy]
    ) -> None:
        app, proxy = proxied
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub: Stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
            await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
            await proxy.cut()
            for call in (
                stub.RecordTouchpoint(
                    pb.RecordTouchpointRequest(
                        touchpoint=touchpoint("t1", "c1", "welcome", "email-1", ago(hours=1))
                    )
                ),
                stub.EnterJourney(enter("e1", "c1", "welcome", ago(days=1))),
                stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome")),
                stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id="e1")),
            ):
                await assert_unavailable(call)


async def wait_for_health(port: int, wanted: str, within: float = 20) -> None:
    """Until the server reports `wanted` for itself and for the service (bounded)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        got = {await health(port, name) for name in ("", SERVICE_NAME)}
        if got == {wanted}:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"health {sorted(got)} after {within} s; wanted {wanted}")
        await asyncio.sleep(0.1)


async def wait_until(condition: Callable[[], bool], within: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"not within {within} s"
        await asyncio.sleep(0.05)


@pytest.fixture
async def refuse_connections(
    postgres_url: str, database_url: str
) -> AsyncIterator[Callable[[bool], Awaitable[None]]]:
    """`await refuse(True)`: the database refuses connections and ends the open ones;
    `await refuse(False)` lets them in again (as teardown does, so it can be dropped)."""
    name = urlsplit(database_url).path.lstrip("/")

    async def refuse(refusing: bool) -> None:
        if refusing:
            await admin_execute(
                postgres_url,
                f'alter database "{name}" allow_connections false',
                "select pg_terminate_backend(pid) from pg_stat_activity"
                f" where datname = '{name}' and pid <> pg_backend_pid()",
            )
        else:
            await admin_execute(postgres_url, f'alter database "{name}" allow_connections true')

    yield refuse
    await refuse(False)


class WriteLoad:
    """Writers recording touchpoints with new event ids, each retried on UNAVAILABLE until it is
    acknowledged (an idempotent write: a repeat of a committed one is harmless)."""

    def __init__(self, stub: Stub, writers: int = 3) -> None:
        self.stub = stub
        self.acknowledged: list[str] = []
        self.codes: set[grpc.StatusCode] = set()  # of the failed attempts
        self.stopping = asyncio.Event()
        self.tasks = [asyncio.create_task(self._write(f"w{w}")) for w in range(writers)]

    async def _write(self, writer: str) -> None:
        for n in itertools.count():
            event_id = f"{writer}-{n}"
            request = pb.RecordTouchpointRequest(
                touchpoint=touchpoint(event_id, f"c-{event_id}", "welcome", "email-1", ago(hours=1))
            )
            while True:
                if self.stopping.is_set():
                    return
                try:
                    await self.stub.RecordTouchpoint(request, timeout=15)
                except grpc.aio.AioRpcError as error:
                    self.codes.add(error.code())
                    await asyncio.sleep(0.05)
                    continue
                self.acknowledged.append(event_id)
                break

    async def stop(self) -> None:
        self.stopping.set()
        await asyncio.gather(*self.tasks)


async def stored_event_ids(database_url: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        return {r["event_id"] for r in await conn.fetch("select event_id from touchpoints")}
    finally:
        await conn.close()


class TestHealthFollowsTheDatabase:
    """Health is NOT_SERVING while the database is out of reach and SERVING again once it is
    back, without a restart; calls meanwhile are UNAVAILABLE, and nothing acknowledged is lost."""

    async def test_the_network_cut_and_restored_under_a_write_load(
        self, proxied: tuple[App, Proxy], database_url: str
    ) -> None:
        app, proxy = proxied
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub: Stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
            await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
            await wait_for_health(app.port, "SERVING")
            load = WriteLoad(stub)
            try:
                await wait_until(lambda: len(load.acknowledged) >= 20)
                await proxy.cut()
                await wait_for_health(app.port, "NOT_SERVING")
                await assert_unavailable(
                    stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"))
                )
                during = len(load.acknowledged)
                await asyncio.sleep(0.5)
                assert len(load.acknowledged) == during  # nothing acknowledged while cut off

                await proxy.restore()
                await wait_for_health(app.port, "SERVING")
                await wait_until(lambda: len(load.acknowledged) >= during + 20)
            finally:
                await load.stop()
            got = await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"))
            assert got.journey.journey_id == "welcome"
        assert grpc.StatusCode.UNAVAILABLE in load.codes  # the outage hit the load
        assert load.codes <= {grpc.StatusCode.UNAVAILABLE}
        stored = await stored_event_ids(database_url)
        assert set(load.acknowledged) <= stored

    async def test_the_database_refusing_connections_and_letting_them_in_again(
        self,
        app: App,
        stub: Stub,
        database_url: str,
        refuse_connections: Callable[[bool], Awaitable[None]],
    ) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
        await wait_for_health(app.port, "SERVING")
        load = WriteLoad(stub)
        try:
            await wait_until(lambda: len(load.acknowledged) >= 20)
            await refuse_connections(True)
            await wait_for_health(app.port, "NOT_SERVING")
            await assert_unavailable(stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome")))
            await refuse_connections(False)
            await wait_for_health(app.port, "SERVING")
            during = len(load.acknowledged)
            await wait_until(lambda: len(load.acknowledged) >= during + 20)
        finally:
            await load.stop()
        assert load.codes <= {grpc.StatusCode.UNAVAILABLE}
        assert set(load.acknowledged) <= await stored_event_ids(database_url)

    async def test_a_black_holed_network_cannot_hang_the_health_probe(
        self, proxied: tuple[App, Proxy]
    ) -> None:
        app, proxy = proxied
        await wait_for_health(app.port, "SERVING")
        proxy.black_hole()  # packets dropped: only a timeout tells
        await wait_for_health(app.port, "NOT_SERVING")
        await proxy.restore()
        await wait_for_health(app.port, "SERVING")
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            stub: Stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
            await stub.DefineJourney(define_journey("welcome", [message("email-1")]))

    async def test_health_stays_not_serving_once_shutdown_began(
        self, proxied: tuple[App, Proxy]
    ) -> None:
        app, proxy = proxied
        await proxy.cut()
        await wait_for_health(app.port, "NOT_SERVING")
        await app.health.enter_graceful_shutdown()  # what App.stop does, the watch still running
        await proxy.restore()
        await wait_until(lambda: app.watch.reachable)  # the watch saw the database back
        assert {await health(app.port, name) for name in ("", SERVICE_NAME)} == {"NOT_SERVING"}

    async def test_a_notice_from_a_failed_call_probes_at_once(
        self, proxied: tuple[App, Proxy]
    ) -> None:
        app, proxy = proxied
        hourly = DatabaseWatch(
            app.pool,
            HealthServicer(),
            [""],
            interval=3600,
            retry_interval=3600,
            failures_before_unreachable=1,
        )
        hourly.start()
        try:
            await proxy.cut()
            notice_unavailable()  # what calls.py does on DATABASE_UNAVAILABLE
            await wait_until(lambda: not hourly.reachable, within=10)
            await proxy.restore()
            notice_unavailable()
            await wait_until(lambda: hourly.reachable, within=10)
        finally:
            await hourly.stop()
