"""Real `journey-conversions serve` processes for tests that need more than one server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

COMMAND = str(Path(sys.executable).with_name("journey-conversions"))
START_TIMEOUT = 60.0


@dataclass
class ServerProcess:
    process: asyncio.subprocess.Process
    port: int
    log_lines: list[dict[str, object]]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


async def _read_port(process: asyncio.subprocess.Process, lines: list[dict[str, object]]) -> int:
    assert process.stderr is not None
    while True:
        raw = await process.stderr.readline()
        if not raw:
            raise RuntimeError(f"server exited before serving: {lines}")
        with contextlib.suppress(ValueError):
            line = json.loads(raw)
            lines.append(line)
            if line.get("event") == "serving":
                return int(str(line["port"]))


async def _drain(process: asyncio.subprocess.Process, lines: list[dict[str, object]]) -> None:
    assert process.stderr is not None
    while raw := await process.stderr.readline():
        with contextlib.suppress(ValueError):
            lines.append(json.loads(raw))


@contextlib.asynccontextmanager
async def serve(*args: str, env: Mapping[str, str] | None = None) -> AsyncIterator[ServerProcess]:
    """Starts `journey-conversions serve ARGS` on a free port; SIGTERM and wait on exit."""
    environment = {**os.environ, "JC_LOG_FORMAT": "json", **(env or {})}
    process = await asyncio.create_subprocess_exec(
        COMMAND,
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--metrics-listen",
        "",
        *args,
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    lines: list[dict[str, object]] = []
    drain: asyncio.Task[None] | None = None
    try:
        port = await asyncio.wait_for(_read_port(process, lines), START_TIMEOUT)
        drain = asyncio.create_task(_drain(process, lines))
        yield ServerProcess(process, port, lines)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()
        if drain is not None:
            await drain
