"""The `journey-conversions` command run as a real process, read through its JSON log lines:
for the system tests, the two-process concurrency test and the benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

COMMAND = Path(sys.executable).parent / "journey-conversions"
START_TIMEOUT = 120.0  # an embedded Postgres runs initdb on its first start
STOP_TIMEOUT = 60.0


def child_env(**extra: str) -> dict[str, str]:
    """This environment without any service setting, logging JSON lines; plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("JC_")}
    env["JC_LOG_FORMAT"] = "json"
    env.update(extra)
    return env


@dataclass
class Process:
    """A running `journey-conversions` command and the JSON log lines it wrote to stderr."""

    proc: asyncio.subprocess.Process
    events: list[dict[str, Any]] = field(default_factory=list)
    other_lines: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _dropping: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start_reading(self) -> None:
        self._reader = asyncio.create_task(self._read())

    def drop_output(self) -> None:
        """From now on the output is read (so the process never blocks on a full pipe) and
        dropped unparsed: a benchmark's server writes a line per call, which parsing would
        charge to the client sharing its cores."""
        self._dropping = True

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            if self._dropping:
                while await self.proc.stderr.read(1 << 16):
                    pass
                break
            line = raw.decode(errors="replace").strip()
            try:
                parsed = json.loads(line)
            except ValueError:
                parsed = None
            if isinstance(parsed, dict) and "event" in parsed:
                self.events.append(parsed)
            elif line:
                self.other_lines.append(line)
            self._changed.set()
        self._changed.set()

    def logged(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    async def wait_for_log(self, event: str, limit: float = START_TIMEOUT) -> dict[str, Any]:
        """The first log line with this event; fails if the process exits without it."""

        async def wait() -> dict[str, Any]:
            while True:
                self._changed.clear()
                found = self.logged(event)
                if found:
                    return found[0]
                if self._reader is not None and self._reader.done():
                    raise AssertionError(f"exited without logging {event!r}: {self.output()}")
                await self._changed.wait()

        return await asyncio.wait_for(wait(), limit)

    async def serving_port(self) -> int:
        port = (await self.wait_for_log("serving"))["port"]
        assert isinstance(port, int)
        return port

    async def finish(self, limit: float = STOP_TIMEOUT) -> int:
        """Waits for the process to end by itself and for its last log lines."""
        code = await asyncio.wait_for(self.proc.wait(), limit)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, limit)
        return code

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        return await self.finish()

    async def close(self) -> None:
        """Kills the process if it still runs, and stops reading its output."""
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    def output(self) -> str:
        return "\n".join([*(json.dumps(e) for e in self.events), *self.other_lines])


Spawn = Callable[..., Awaitable[Process]]


async def health(port: int, service: str = "") -> str:
    """The name of the health status a server on this local port reports, e.g. "SERVING"."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        check = channel.unary_unary(
            "/grpc.health.v1.Health/Check",
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        response = await check(health_pb2.HealthCheckRequest(service=service), timeout=30)
    assert isinstance(response, health_pb2.HealthCheckResponse)
    name = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    assert isinstance(name, str)
    return name


async def start(*args: str, env: Mapping[str, str] | None = None) -> Process:
    """Starts `journey-conversions ARGS` (environment: `child_env()` unless given)."""
    proc = await asyncio.create_subprocess_exec(
        str(COMMAND),
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else child_env(),
    )
    process = Process(proc)
    process.start_reading()
    return process


def serve_command(*args: str) -> tuple[str, ...]:
    """The `journey-conversions` arguments of a server like `serve(*args)`'s (a free loopback
    port, no metrics, development auth unless ARGS say --auth), for tests that start, kill and
    restart servers themselves."""
    auth = () if "--auth" in args else ("--auth", "dev")
    return ("serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", *auth, *args)


@dataclass
class Server:
    process: Process
    port: int

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@contextlib.asynccontextmanager
async def serve(*args: str) -> AsyncIterator[Server]:
    """A `journey-conversions serve ARGS` process on a free port, stopped with SIGTERM after;
    with development auth (x-tenant-id names the tenant) unless ARGS say --auth."""
    auth = () if "--auth" in args else ("--auth", "dev")
    process = await start("serve", "--listen", "127.0.0.1:0", "--metrics-listen", "", *auth, *args)
    try:
        yield Server(process, await process.serving_port())
        if process.proc.returncode is None:
            await process.stop()
    finally:
        await process.close()
