"""Shared fixtures: a real Postgres, a fresh migrated database per test, a real server.

Postgres is TEST_DATABASE_URL when set, otherwise an embedded server started for the session.
Each test gets its own database copied from a migrated template (CREATE DATABASE ... TEMPLATE),
and its own grpc.aio server on a free port, called through the generated stubs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
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


async def _admin(postgres_url: str, *statements: str) -> None:
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
    await _admin(postgres_url, f'create database "{name}"')
    await db.migrate(with_database(postgres_url, name))
    yield name
    await _admin(postgres_url, f'drop database if exists "{name}" with (force)')


@pytest.fixture
async def database_url(postgres_url: str, template_database: str) -> AsyncIterator[str]:
    """A fresh database for one test, with the schema already applied."""
    name = f"jc_test_{uuid.uuid4().hex[:12]}"
    await _admin(postgres_url, f'create database "{name}" template "{template_database}"')
    yield with_database(postgres_url, name)
    await _admin(postgres_url, f'drop database if exists "{name}" with (force)')


@pytest.fixture
def service_config() -> config_module.Config:
    return config_module.from_values(["--pool-min-size", "1", "--pool-max-size", "8"])


@pytest.fixture
async def app(database_url: str, service_config: config_module.Config) -> AsyncIterator[App]:
    """A real server on a free port, on the test's own database."""
    running = await build(service_config, database_url, "127.0.0.1:0")
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
