"""The connection pool and the numbered, forward-only schema migrations."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import TypeVar, cast

import asyncpg

from journey_conversions.errors import Unavailable
from journey_conversions.logs import log

TRANSACTION_ATTEMPTS = 4
# An idle connection is handed over at once; this only bounds a race with another taker.
_IDLE_ACQUIRE_SECONDS = 0.01
T = TypeVar("T")

# Held while migrating, so replicas starting at once apply each migration exactly once.
MIGRATION_LOCK_KEY = 0x6A6F75726E6579  # "journey"


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a connection is reset with when it goes back to the pool: nothing more than asyncpg
    always does (it rolls back a transaction left open). asyncpg's default adds a round trip
    per release (UNLISTEN *, RESET ALL, CLOSE ALL, pg_advisory_unlock_all()), one per
    transaction here, to undo session state that this service never leaves: its locks and
    settings are transaction-scoped (retention releases its one session lock itself), and
    LISTEN has a connection of its own (notifier.py)."""


async def create_pool(url: str, min_size: int, max_size: int) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=60,
        # JIT compiles plans whose estimated cost is high (a report over a large journey) and
        # costs more than it saves for these short statements (measured: ~110 ms per report).
        server_settings={"jit": "off"},
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


# Errors that mean the connection to the database was lost or could not be made. The work
# of the transaction did not commit, or (lost during COMMIT) may have: either way running it
# again is safe, because every write is idempotent.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # a pooled connection whose server end was terminated
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)
# SQLSTATE classes that mean "not now": connection exceptions, insufficient resources, operator
# intervention (shutdown, crash recovery).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
_CONNECTION_RETRIES = 2


def unavailable(error: BaseException) -> Unavailable | None:
    """The UNAVAILABLE error for a database failure a caller can retry, or None."""
    if isinstance(error, CONNECTION_ERRORS):
        return Unavailable(f"the database is unavailable: {error}")
    state = getattr(error, "sqlstate", None)
    if isinstance(error, asyncpg.PostgresError) and str(state)[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
        return Unavailable(f"the database is unavailable: {error}")
    return None


async def _acquire(pool: asyncpg.Pool) -> asyncpg.pool.PoolConnectionProxy[asyncpg.Record]:
    """A pooled connection; any failure to get one (refused, too many clients, database not
    accepting connections) means the database is unavailable."""
    try:
        return await pool.acquire()
    except Exception as error:
        raise Unavailable(f"the database is unavailable: {error}") from error


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A pooled connection outside any transaction (statements commit one by one)."""
    conn = await _acquire(pool)
    try:
        yield cast(asyncpg.Connection, conn)
    finally:
        await _release(pool, conn)


@contextlib.asynccontextmanager
async def idle_connection(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection | None]:
    """A second connection for work that can use one but does not need it (a report reading
    two sections at once): one the pool holds idle right now, or None. It never waits for a
    connection, nor takes one another call is waiting for, so it cannot starve writes or
    deadlock callers that each hold one and want another."""
    if pool.get_idle_size() == 0:
        yield None
        return
    try:
        conn = await pool.acquire(timeout=_IDLE_ACQUIRE_SECONDS)
    except Exception:  # taken meanwhile, or broken: go on with one connection
        yield None
        return
    try:
        yield cast(asyncpg.Connection, conn)
    finally:
        await _release(pool, conn)


async def transaction(pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Runs `work` in a transaction and returns its result after COMMIT.

    Runs it again from the start when Postgres chose it as a deadlock or serialization victim,
    or when the connection broke (once more on a fresh connection); a database that stays out
    of reach becomes UNAVAILABLE.
    """
    deadlocks = connection_losses = 0
    while True:
        conn = await _acquire(pool)
        try:
            async with conn.transaction():
                # The pool's proxy forwards every Connection method.
                return await work(cast(asyncpg.Connection, conn))
        except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
            deadlocks += 1
            if deadlocks == TRANSACTION_ATTEMPTS:
                raise
            log.warning("transaction retried", cause="deadlock or serialization", attempt=deadlocks)
        except CONNECTION_ERRORS as error:
            connection_losses += 1
            if connection_losses > _CONNECTION_RETRIES:
                raise Unavailable(f"the database is unavailable: {error}") from error
            log.warning("transaction retried", cause="connection lost", error=str(error))
        finally:
            await _release(pool, conn)


async def _release(
    pool: asyncpg.Pool, conn: asyncpg.pool.PoolConnectionProxy[asyncpg.Record]
) -> None:
    try:
        await pool.release(conn)
    except Exception as error:  # a broken connection: the pool replaces it
        log.warning("connection release failed", error=str(error))
