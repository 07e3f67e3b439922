"""A server whose database goes away answers UNAVAILABLE, which tells clients to retry, never
INTERNAL; and it serves again once the database is back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit, urlunsplit

import grpc
import pytest
from journeys.conversions.v1 import service_pb2 as pb
from journeys.conversions.v1 import service_pb2_grpc

from journey_conversions import config as config_module
from journey_conversions.server import App, build
from tests.builders import ago, define_journey, enter, error_reason, message, touchpoint
from tests.conftest import admin_execute

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

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        assert isinstance(port, int)
        return port

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
