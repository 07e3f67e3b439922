"""Fixtures of the system tests: the `journey-conversions` command run as a real process, and
empty databases for it to migrate."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import with_database
from tests.processes import Process, Spawn, start


@pytest.fixture
async def spawn() -> AsyncIterator[Spawn]:
    """Starts `journey-conversions <args>`; whatever is still running at the end is killed."""
    started: list[Process] = []

    async def run(*args: str, env: dict[str, str] | None = None) -> Process:
        process = await start(*args, env=env)
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
