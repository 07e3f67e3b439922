"""The connection pool and the numbered, forward-only schema migrations."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import TypeVar, cast

import asyncpg

from journey_conversions.errors import Unavailable
from journey_conversions.logs import log

TRANSACTION_ATTEMPTS = 4
T = TypeVar("T")

# Held while migrating, so replicas starting at once apply each migration exactly once.
MIGRATION_LOCK_KEY = 0x6A6F75726E6579  # "journey"


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(url: str, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=_init_connection, command_timeout=60
    )
    assert pool is not None
    return pool


def migration_files() -> list[tuple[int, str, str]]:
    """(number, name, sql) of every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("journey_conversions.migrations").iterdir():
        if entry.name.endswith(".sql"):
            number = int(entry.name.split("_", 1)[0])
            found.append((number, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(url: str) -> list[str]:
    """Applies the migrations not applied yet; returns their names."""
    conn = await asyncpg.connect(url)
    try:
        applied_now: list[str] = []
        await conn.execute("select pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await conn.execute(
                "create table if not exists schema_migrations ("
                " version integer primary key, name text not null,"
                " applied_time timestamptz not null default now())"
            )
            done = {r["version"] for r in await conn.fetch("select version from schema_migrations")}
            for number, name, sql in migration_files():
                if number in done:
                    continue
                async with conn.transaction():
                    await conn.execute(sql)
                    await conn.execute(
                        "insert into schema_migrations (version, name) values ($1, $2)",
                        number,
                        name,
                    )
                applied_now.append(name)
                log.info("migration applied", migration=name)
        finally:
            await conn.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
        return applied_now
    finally:
        await conn.close()


# Errors that mean the database is out of reach: the caller may retry the same request.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)


async def transaction(pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Runs `work` in a transaction, again from the start when Postgres chose it as a deadlock
    or serialization victim; a lost database becomes UNAVAILABLE."""
    for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
        try:
            async with pool.acquire() as conn, conn.transaction():
                # The pool's proxy forwards every Connection method.
                return await work(cast(asyncpg.Connection, conn))
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
            if attempt == TRANSACTION_ATTEMPTS:
                raise
            log.warning("transaction retried", attempt=attempt)
        except CONNECTION_ERRORS as error:
            raise Unavailable(f"the database is unavailable: {error}") from error
    raise AssertionError("unreachable")
