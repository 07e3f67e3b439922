"""Rebuilding a tenant's derived rows from its raw rows: after a bulk load straight into the
tables (a COPY of enrollments, touchpoints and goal events, into monthly partitions created
first: partitions.ensure), or to recompute report facts. Loaded events get their ids too.

Derived rows are the daily touchpoint counts, the per-enrollment facts (first touches, steps and
paths reached, goal met), goal outcomes, awards, conversion credits, and the conversion-event
outbox entries that their changes emit. Contacts are
re-decided over their whole history, a batch per transaction, under their locks, so a rebuild
may run beside live traffic.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from journey_conversions import db
from journey_conversions.store import decisions, facts, partitions, retention, sql

ALL_HISTORY = datetime(1900, 1, 1, tzinfo=UTC)  # before any event (windows reach back from it)
ENROLLMENT_BATCH = 20_000
CONTACT_BATCH = 500

_ANALYZE_DERIVED = (
    "analyze enrollments, enrollment_reach, goal_outcomes, awards, conversion_credits,"
    " credited_elsewhere, conversion_events"
)
Progress = Callable[[str, int, int], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Rebuilt:
    enrollments: int
    contacts: int
    award_changes: int


async def _ids(pool: asyncpg.Pool, query: str, tenant_id: str) -> list[str]:
    async with db.connection(pool) as conn:
        return [r[0] for r in await conn.fetch(query, tenant_id)]


class HistoryDropped(Exception):
    """The tenant's raw rows no longer hold its whole history: retention dropped part of it."""


async def _check_history_whole(pool: asyncpg.Pool, tenant_id: str) -> None:
    async with db.connection(pool) as conn:
        since = await retention.retained_from(conn)
        if since is None:
            return
        reaches = await conn.fetchval(
            "select exists (select 1 from enrollments where tenant_id = $1 and enter_time < $2)",
            tenant_id,
            since,
        )
    if reaches:
        raise HistoryDropped(
            f"tenant {tenant_id!r} has enrollments from before {since:%Y-%m-%d}, where retention"
            " dropped the touchpoints and goal events: a rebuild would recompute its figures"
            " from part of its history"
        )


# The statements over all of a tenant's touchpoints: minutes at tens of millions of rows, far
# past the pool's command timeout (db.create_pool), which is meant for the service's calls.
_WHOLE_TENANT = 3600.0


async def rebuild_tenant(
    pool: asyncpg.Pool, tenant_id: str, progress: Progress | None = None
) -> Rebuilt:
    """Recomputes every derived row of the tenant from its raw rows; refused (HistoryDropped)
    when retention dropped raw rows its derived rows came from."""
    await _check_history_whole(pool, tenant_id)

    async def recount(conn: asyncpg.Connection) -> None:
        await conn.execute(
            "delete from touchpoint_counts where tenant_id = $1", tenant_id, timeout=_WHOLE_TENANT
        )
        await conn.execute(
            sql.statement("touchpoint_counts_rebuild"), tenant_id, timeout=_WHOLE_TENANT
        )
        # Rows loaded straight into the tables get their idempotency keys (migration 0006).
        for table, ids in partitions.ID_TABLES.items():
            await conn.execute(
                f"insert into {ids} (tenant_id, event_id, contact_id, occur_time)"
                f" select $1, event_id, contact_id, occur_time from {table} where tenant_id = $1"
                " on conflict (tenant_id, event_id) do nothing",
                tenant_id,
                timeout=_WHOLE_TENANT,
            )

    await db.transaction(pool, recount)
    enrollments = await _ids(
        pool,
        "select enrollment_id from enrollments where tenant_id = $1 order by enrollment_id",
        tenant_id,
    )
    for start in range(0, len(enrollments), ENROLLMENT_BATCH):
        chunk = enrollments[start : start + ENROLLMENT_BATCH]

        async def recompute(conn: asyncpg.Connection, chunk: list[str] = chunk) -> None:
            await facts.recompute(conn, tenant_id, chunk)

        await db.transaction(pool, recompute)
        await _report(progress, "enrollments", start + len(chunk), len(enrollments))

    # Contacts whose attribution can have results: those with goal events or step marks.
    contacts = await _ids(
        pool,
        "select contact_id from goal_events where tenant_id = $1"
        " union select contact_id from step_marks where tenant_id = $1 order by 1",
        tenant_id,
    )
    changes = 0
    for batch, start in enumerate(range(0, len(contacts), CONTACT_BATCH)):
        chunk = contacts[start : start + CONTACT_BATCH]
        if batch & (batch - 1) == 0:
            # The derived tables grow from nothing: statistics kept up to date (autovacuum may
            # be off, or late) keep re-decisions on index plans instead of whole-table scans.
            async with db.connection(pool) as conn:
                await conn.execute(_ANALYZE_DERIVED)

        async def redecide(conn: asyncpg.Connection, chunk: list[str] = chunk) -> int:
            found = await decisions.lock_and_redecide(conn, tenant_id, chunk, ALL_HISTORY)
            return found.awards_changed

        changes += await db.transaction(pool, redecide)
        await _report(progress, "contacts", start + len(chunk), len(contacts))
    return Rebuilt(len(enrollments), len(contacts), changes)


async def _report(progress: Progress | None, what: str, done: int, total: int) -> None:
    if progress is not None:
        result = progress(what, done, total)
        if result is not None:
            await result
