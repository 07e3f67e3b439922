"""Retention: dropping the touchpoints and goal events no decision can read again.

A goal event older than the horizon (allowed lateness, plus a margin) is final: no event
accepted now can change its outcome, so nothing re-decides it, and re-deciding a later one reads
touchpoints back at most one attribution window before it. So every raw row before

    cutoff = horizon(now) - the longest window of any journey

is read by nothing that decides, and the months wholly before the cutoff are dropped: each
partition is detached without blocking writers (DETACH ... CONCURRENTLY), then dropped, and the
ids of its events (touchpoint_ids, goal_event_ids) are deleted.

Reports keep their figures: they count from rollups and derived rows (touchpoint_counts, cohort
counts, outcomes, awards, credits), which retention keeps; raw rows are read only for the parts
of a range's first and last days that do not start or end at a UTC midnight (see the README).

Not retained either: an event id's idempotency. A repeat of a dropped event is refused anyway
(older than the allowed lateness); a reuse of its id for a new event is then accepted. Nor the
explanation of a dropped goal event (queries.explain: GOAL_EVENT_DROPPED). Evaluate-goal steps
and amendments of dropped goal events work from the derived rows (store/steps.py,
final_amended_awards.sql).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from journey_conversions import db
from journey_conversions.clock import TimePolicy
from journey_conversions.store import partitions
from journey_conversions.store.partitions import Partition

# One retention at a time across replicas (a session lock: detaching commits on its own).
_LOCK = "select pg_try_advisory_lock(hashtext('journey_conversions.retention'))"
_UNLOCK = "select pg_advisory_unlock(hashtext('journey_conversions.retention'))"


@dataclass(frozen=True, slots=True)
class Plan:
    now: datetime
    cutoff: datetime
    expired: tuple[Partition, ...]
    kept: tuple[Partition, ...]


@dataclass(frozen=True, slots=True)
class Outcome:
    plan: Plan
    dropped: tuple[Partition, ...]
    ids_deleted: int
    busy: bool = False  # another replica or command was running retention: nothing done


async def plan(conn: asyncpg.Connection, policy: TimePolicy, now: datetime) -> Plan:
    """The partitions wholly before the cutoff, and those kept."""
    # Over every tenant: the partitions are shared.
    longest = await conn.fetchval("select coalesce(max(window_seconds), 0) from journeys")
    cutoff = policy.horizon(now) - timedelta(seconds=int(longest))
    listed = await partitions.listed(conn)
    return Plan(
        now,
        cutoff,
        tuple(p for p in listed if p.end <= cutoff),
        tuple(p for p in listed if p.end > cutoff),
    )


async def retained_from(conn: asyncpg.Connection) -> datetime | None:
    """Where the raw history begins (None: nothing was ever dropped)."""
    value: datetime | None = await conn.fetchval("select max(retained_from) from retention_runs")
    return value


async def apply(pool: asyncpg.Pool, policy: TimePolicy, now: datetime) -> Outcome:
    """Drops the expired partitions and their events' ids."""
    async with db.connection(pool) as conn:
        if not await conn.fetchval(_LOCK):
            return Outcome(await plan(conn, policy, now), (), 0, busy=True)
        try:
            found = await plan(conn, policy, now)
            if not found.expired:
                return Outcome(found, (), 0)
            # Recorded first: a rebuild or import that starts meanwhile already keeps out.
            await conn.execute(
                "insert into retention_runs (ran_at, cutoff, retained_from, dropped)"
                " values ($1, $2, $3, $4)",
                now,
                found.cutoff,
                max(p.end for p in found.expired),
                [p.name for p in found.expired],
            )
            deleted = 0
            for partition in found.expired:
                await _drop(conn, partition)
                status = await conn.execute(
                    f"delete from {partitions.ID_TABLES[partition.table]}"
                    " where occur_time >= $1 and occur_time < $2",
                    partition.start,
                    partition.end,
                )
                deleted += int(status.split()[-1])
            return Outcome(found, found.expired, deleted)
        finally:
            await conn.execute(_UNLOCK)


async def _drop(conn: asyncpg.Connection, partition: Partition) -> None:
    pending = await conn.fetchval(
        "select i.inhdetachpending from pg_inherits i"
        " where i.inhrelid = to_regclass($1) and i.inhparent = to_regclass($2)",
        partition.name,
        partition.table,
    )
    if pending is not None:  # still attached: detach (finish a detach a crash interrupted)
        how = "finalize" if pending else "concurrently"
        await conn.execute(
            f'alter table {partition.table} detach partition "{partition.name}" {how}'
        )
    await conn.execute(f'drop table if exists "{partition.name}"')
