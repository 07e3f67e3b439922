"""Fixtures of the client tests: a client of the live server with a tenant of its own, the
check that decides whether a missing Node or Go toolchain skips a test or fails it, and a
way to run a command without blocking the event loop the server shares."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from journey_conversions_client import JourneyConversionsClient


@pytest.fixture
def tenant_id() -> str:
    """A tenant no other test uses, so every figure read back is this test's alone."""
    return f"py-client-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def client(service_target: str, tenant_id: str) -> AsyncIterator[JourneyConversionsClient]:
    async with JourneyConversionsClient(service_target, tenant_id=tenant_id) as c:
        yield c


@pytest.fixture
def require_tools() -> Callable[..., None]:
    """A check that skips the test when a tool is missing, except in CI (CI=true), where the
    test fails instead: CI must run every language's live test."""
    return _require_tools


def _require_tools(*tools: str) -> None:
    """Each tool is a command on PATH, or an absolute path that must exist."""
    missing = [
        tool
        for tool in tools
        if not (Path(tool).exists() if tool.startswith("/") else shutil.which(tool))
    ]
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{', '.join(missing)} not installed; CI must run this test: scripts/ci-clients"
        )
    pytest.skip(f"{', '.join(missing)} not installed (run scripts/ci-clients to install)")


RunCommand = Callable[..., Awaitable[tuple[int, str]]]


@pytest.fixture
def run_command(service_target: str) -> RunCommand:
    """Runs a command in a directory with JC_TARGET set to the live server, without blocking
    the event loop the server shares; gives back its exit status and its output."""

    async def run(*argv: str, cwd: Path, limit: float = 900) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env={**os.environ, "JC_TARGET": service_target},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), limit)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        code = proc.returncode if proc.returncode is not None else -1
        return code, out.decode(errors="replace")

    return run
