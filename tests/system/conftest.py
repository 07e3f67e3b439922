"""Fixtures of the system tests: the `journey-conversions` command run as a real process, and
empty databases for it to migrate."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import with_database
from tests.system.processes import COMMAND, Process, Spawn, child_env


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """Starts `journey-conversions <args>`; whatever is still running at the end is killed."""
    started: list[Process] = []

    async def run(*args: str, env: dict[str, str] | None = None) -> Process:
        proc = await asyncio.create_subprocess_exec(
            str(COMMAND),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env=env if env is not None else child_env(),
        )
        process = Process(proc)
        process.start_reading()
        started.append(process)
        return process

    yield run
    for process in started:
        await process.close()


@pytest.fixture
async def empty_database(postgres_url: str) -> AsyncIterator[str]:
    """The URL of a new database with nothing in it, dropped afterwards."""
    name = f"jc_empty_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    yield with_database(postgres_url, name)
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(f'drop database if exists "{name}" with (force)')
    finally:
        await admin.close()
