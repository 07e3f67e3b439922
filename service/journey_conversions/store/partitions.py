"""Monthly partitions of touchpoints and goal events (migration 0006): created ahead of the
events that need them, and listed by month for retention (store/retention.py).

A partition is named after its parent and its month, `touchpoints_2026_11`, and holds the
occur times [first instant of the month, first instant of the next) in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

PARTITIONED = ("touchpoints", "goal_events")
# Each partitioned table's idempotency keys (migration 0006): a unique key of a partitioned
# table must hold the partition key, so (tenant_id, event_id) lives in a table of its own.
ID_TABLES = {"touchpoints": "touchpoint_ids", "goal_events": "goal_event_ids"}
# Partitions are kept this far ahead of now, so a write never waits on creating one: the
# server's maintenance (maintenance.py) runs far more often than that.
AHEAD = timedelta(days=40)


@dataclass(frozen=True, slots=True)
class Partition:
    table: str
    name: str
    start: datetime
    end: datetime


def month_start(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return datetime(t.year, t.month, 1, tzinfo=UTC)


def next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + month.month // 12, month=month.month % 12 + 1)


def months(start: datetime, end: datetime) -> list[datetime]:
    """The first instants of the months holding [start, end]."""
    found, month = [], month_start(start)
    while month <= end:
        found.append(month)
        month = next_month(month)
    return found


async def ensure(conn: asyncpg.Connection, times: Iterable[datetime]) -> int:
    """Creates the partitions of both tables holding these times that do not exist yet; returns
    how many were created. In its own transaction, or one that creates nothing else: creating
    a partition locks its parent until commit."""
    return int(
        await conn.fetchval(
            "select ensure_month_partitions('touchpoints', $1::timestamptz[])"
            " + ensure_month_partitions('goal_events', $1::timestamptz[])",
            sorted(set(times)),
        )
    )


async def ensure_between(conn: asyncpg.Connection, start: datetime, end: datetime) -> int:
    """As ensure, for every month from start's to end's."""
    return await ensure(conn, months(start, end))


_NAME = re.compile(r"^(?P<table>[a-z_]+)_(?P<year>\d{4})_(?P<month>\d{2})$")


async def listed(conn: asyncpg.Connection) -> list[Partition]:
    """The monthly partitions of both tables, oldest first."""
    rows = await conn.fetch(
        "select p.relname as parent, c.relname as name from pg_inherits i"
        " join pg_class c on c.oid = i.inhrelid join pg_class p on p.oid = i.inhparent"
        " where p.relname = any($1::text[])",
        list(PARTITIONED),
    )
    found = []
    for row in rows:
        match = _NAME.match(row["name"])
        if match is None or match["table"] != row["parent"]:
            continue  # not one of ours (an operator's own partition): never dropped
        start = datetime(int(match["year"]), int(match["month"]), 1, tzinfo=UTC)
        found.append(Partition(row["parent"], row["name"], start, next_month(start)))
    return sorted(found, key=lambda p: (p.start, p.table))
