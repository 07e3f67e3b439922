"""`journey-conversions serve` on a machine without DATABASE_URL: it starts an embedded Postgres
in its data directory, serves, stops cleanly on SIGTERM and SIGINT, keeps its data across
restarts, and recovers the Postgres a SIGKILLed predecessor left running."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from journeys.conversions.v1 import service_pb2 as pb
from journeys.conversions.v1 import service_pb2_grpc

from tests.builders import define_journey, message
from tests.processes import Process, Spawn, child_env, health

if TYPE_CHECKING:
    from tests.builders import Stub


def postmaster_pid(data_dir: Path) -> int | None:
    """The pid of the embedded Postgres running on data_dir, if one is."""
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


@pytest.fixture
async def data_dir(tmp_path: Path) -> AsyncIterator[Path]:
    """An embedded Postgres data directory; a Postgres left running on it is stopped after."""
    path = tmp_path / "pgdata"
    yield path
    pid = postmaster_pid(path)
    if pid is not None:
        os.kill(pid, signal.SIGINT)  # Postgres' fast shutdown
        for _ in range(300):
            if postmaster_pid(path) is None:
                break
            await asyncio.sleep(0.1)


async def start_embedded(spawn: Spawn, data_dir: Path, *extra: str) -> tuple[Process, int]:
    """`serve` with no DATABASE_URL anywhere in its environment, and `extra` flags."""
    env = child_env()
    assert "DATABASE_URL" not in env
    served = await spawn(
        "serve",
        "--data-dir",
        str(data_dir),
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "",
        "--auth",
        "dev",
        *extra,
        env=env,
    )
    return served, await served.serving_port()


def stub_for(channel: grpc.aio.Channel) -> Stub:
    return service_pb2_grpc.JourneyConversionsServiceStub(channel)


async def define(port: int, journey_id: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await stub_for(channel).DefineJourney(define_journey(journey_id, [message("email-1")]))


async def journey_ids(port: int) -> list[str]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        listed = await stub_for(channel).ListJourneys(pb.ListJourneysRequest())
    return [j.journey_id for j in listed.journeys]


class TestEmbeddedPostgres:
    """Without a database URL the server brings its own Postgres and keeps its data."""

    async def test_serves_stops_on_sigterm_and_sigint_and_keeps_data_across_restarts(
        self, spawn: Spawn, data_dir: Path
    ) -> None:
        first, port = await start_embedded(spawn, data_dir)
        started = first.logged("embedded postgres started")
        assert [e["data_dir"] for e in started] == [str(data_dir)]
        assert [e["event_loop"] for e in first.logged("serving")] == ["uvloop"]
        assert await health(port) == "SERVING"
        await define(port, "welcome")

        assert await first.stop(signal.SIGTERM) == 0, first.output()
        assert [e["event"] for e in first.events][-2:] == ["shutting down", "stopped"]
        assert postmaster_pid(data_dir) is None, "the embedded Postgres outlived the server"

        second, port = await start_embedded(spawn, data_dir, "--event-loop", "asyncio")
        assert [e["event_loop"] for e in second.logged("serving")] == ["asyncio"]
        assert await journey_ids(port) == ["welcome"]
        assert await second.stop(signal.SIGINT) == 0, second.output()
        assert second.logged("stopped")
        assert postmaster_pid(data_dir) is None

    async def test_restart_after_sigkill_reuses_the_postgres_left_running(
        self, spawn: Spawn, data_dir: Path
    ) -> None:
        killed, port = await start_embedded(spawn, data_dir)
        await define(port, "welcome")
        killed.proc.kill()
        assert await killed.finish() == -signal.SIGKILL
        assert not killed.logged("stopped")
        stale = postmaster_pid(data_dir)
        assert stale is not None, "SIGKILL leaves the embedded Postgres behind"

        restarted, port = await start_embedded(spawn, data_dir)
        assert await health(port) == "SERVING"
        assert await journey_ids(port) == ["welcome"]
        await define(port, "second")
        assert await restarted.stop(signal.SIGTERM) == 0, restarted.output()
        assert postmaster_pid(data_dir) is None
