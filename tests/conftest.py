"""Shared fixtures: a real Postgres, a fresh migrated database per test, a real server.

Postgres is TEST_DATABASE_URL when set, otherwise an embedded server started for the session.
Each test gets its own database copied from a migrated template (CREATE DATABASE ... TEMPLATE),
and its own grpc.aio server on a free port, called through the generated stubs.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from journey_conversions import config as config_module
from journey_conversions import db
from journey_conversions.embedded_pg import EmbeddedPostgres
from journey_conversions.server import App, build

if TYPE_CHECKING:
    from tests.builders import Stub
from journeys.conversions.v1 import service_pb2_grpc


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An admin URL of a real Postgres server."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    embedded = EmbeddedPostgres(Path(tmp_path_factory.mktemp("pg")) / "data")
    yield embedded.start()
    embedded.stop()


async def admin_execute(postgres_url: str, *statements: str) -> None:
    """Runs statements on the server's admin database (creating and dropping databases)."""
    conn = await asyncpg.connect(postgres_url)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
async def template_database(postgres_url: str) -> AsyncIterator[str]:
    """A migrated database that every test database is copied from."""
    name = f"jc_template_{uuid.uuid4().hex[:12]}"
    await admin_execute(postgres_url, f'create database "{name}"')
    await db.migrate(with_database(postgres_url, name))
    yield name
    await admin_execute(postgres_url, f'drop database if exists "{name}" with (force)')


@pytest.fixture
async def database_url(postgres_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh database for one test, with the schema already applied."""
    name = f"jc_test_{uuid.uuid4().hex[:12]}"
    await admin_execute(postgres_url, f'create database "{name}" template "{template_database}"')
    yield with_database(postgres_url, name)
    await admin_execute(postgres_url, f'drop database if exists "{name}" with (force)')


@contextlib.asynccontextmanager
async def touchpoints_locked(database_url: str) -> AsyncIterator[None]:
    """Every touchpoint insert waits while the block runs: writes held in flight at will."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("lock table touchpoints in access exclusive mode")
            yield
    finally:
        await conn.close()


# Most tests name their tenant with x-tenant-id (development auth); tests/api/test_auth.py
# and tests/system/test_keys.py run servers that check API keys.
DEV_SERVER = ("--pool-min-size", "1", "--pool-max-size", "8", "--auth", "dev")


@pytest.fixture
def service_config() -> config_module.Config:
    return config_module.from_values(DEV_SERVER)


@pytest.fixture
async def app(database_url: str, service_config: config_module.Config) -> AsyncIterator[App]:
    """A real server on a free port, on the test's own database."""
    running = await build(service_config, database_url, "127.0.0.1:0")
    yield running
    await running.stop(grace=1)


@pytest.fixture(scope="module")
async def shared_server(postgres_url: str, template_database: str) -> AsyncIterator[str]:
    """One real server and database for a whole module, for modules whose tests keep apart by
    tenant (see `tenant_stub`): a database per test costs about a third of a second."""
    name = f"jc_shared_{uuid.uuid4().hex[:12]}"
    await admin_execute(postgres_url, f'create database "{name}" template "{template_database}"')
    config = config_module.from_values(DEV_SERVER)
    running = await build(config, with_database(postgres_url, name), "127.0.0.1:0")
    yield f"127.0.0.1:{running.port}"
    await running.stop(grace=1)
    await admin_execute(postgres_url, f'drop database if exists "{name}" with (force)')


class InTenant(grpc.aio.UnaryUnaryClientInterceptor):
    """Sends every unary call with one tenant's x-tenant-id."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id

    async def intercept_unary_unary(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
        metadata.add("x-tenant-id", self.tenant_id)
        details = grpc.aio.ClientCallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


@pytest.fixture
async def tenant_stub(shared_server: str) -> AsyncIterator[Stub]:
    """The generated stub on the module's shared server, every call in a tenant of this test's
    own: the test sees an empty service."""
    interceptor = InTenant(f"t-{uuid.uuid4().hex[:16]}")
    async with grpc.aio.insecure_channel(shared_server, interceptors=[interceptor]) as channel:
        yield service_pb2_grpc.JourneyConversionsServiceStub(channel)


# A server that checks API keys; a revoked key fails after KEY_RECHECK_SECONDS.
KEY_RECHECK_SECONDS = 0.2
KEYED_SERVER = (
    *DEV_SERVER[:4],
    "--auth",
    "keys",
    "--key-recheck-seconds",
    str(KEY_RECHECK_SECONDS),
)


@pytest.fixture
async def keyed_app(database_url: str) -> AsyncIterator[App]:
    """A real server on a free port that takes the tenant from API keys (tests/keys.py)."""
    running = await build(config_module.from_values(KEYED_SERVER), database_url, "127.0.0.1:0")
    yield running
    await running.stop(grace=1)


@pytest.fixture
async def keyed_stub(keyed_app: App) -> AsyncIterator[Stub]:
    """The generated stub on the keyed server; calls carry no key unless given one."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{keyed_app.port}") as opened:
        yield service_pb2_grpc.JourneyConversionsServiceStub(opened)


async def tls_server(database_url: str, pki: Path, mutual: bool) -> App:
    """A keyed server over TLS with pki's server.pem; with `mutual`, clients need a
    certificate signed by pki's test-ca.pem (tests/certs.py makes them)."""
    flags = [*KEYED_SERVER, "--tls-cert", str(pki / "server.pem")]
    flags += ["--tls-key", str(pki / "server-key.pem")]
    if mutual:
        flags += ["--tls-client-ca", str(pki / "test-ca.pem")]
    return await build(config_module.from_values(flags), database_url, "127.0.0.1:0")


@pytest.fixture
async def tls_app(database_url: str, pki: Path) -> AsyncIterator[App]:
    """A server that checks API keys, over TLS (the server's certificate only); `pki` is the
    directory of certificates a test module or directory provides."""
    running = await tls_server(database_url, pki, mutual=False)
    yield running
    await running.stop(grace=1)


@pytest.fixture
async def mtls_app(database_url: str, pki: Path) -> AsyncIterator[App]:
    """A server that checks API keys or client certificates signed by the test CA (mutual
    TLS: a client without a certificate fails the handshake)."""
    running = await tls_server(database_url, pki, mutual=True)
    yield running
    await running.stop(grace=1)


@pytest.fixture
def service_target(app: App) -> str:
    return f"127.0.0.1:{app.port}"


@pytest.fixture
async def channel(service_target: str) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(service_target) as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> Stub:
    """The generated stub on an aio channel (typed by mypy-protobuf as the async stub)."""
    return service_pb2_grpc.JourneyConversionsServiceStub(channel)
