"""A report's figures by event time: conversions per day of a time zone, and the journeys that
this journey's participants' goal events went to."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg

from journey_conversions.store import sql
from journey_conversions.store.report_query import ReportQuery

ELSEWHERE_TOP = 10


@dataclass
class DayFigures:
    day: date
    goal_conversions: int = 0
    named_conversions: int = 0
    value: dict[str, int] = field(default_factory=dict)  # currency -> micros


_EPOCH_DAY = datetime(2000, 1, 1, tzinfo=UTC)  # the origin of touchpoint_counts' days


def whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The whole UTC days inside [start, end), as [first day's start, last day's end); an empty
    span at `end` when there is none."""
    day = timedelta(days=1)
    first = _EPOCH_DAY + -((_EPOCH_DAY - start) // day) * day  # start, rounded up to a day
    last = _EPOCH_DAY + ((end - _EPOCH_DAY) // day) * day  # end, rounded down
    return (first, last) if first < last else (end, end)


def day_starts(first: date, last: date, zone: ZoneInfo) -> list[datetime]:
    """The UTC instant each local day from `first` to `last` begins (a midnight that a
    daylight-saving change skips is read with the offset in force before it, PEP 495)."""
    days = (last - first).days + 1
    return [
        datetime.combine(first + timedelta(days=i), time(0), zone).astimezone(UTC)
        for i in range(days)
    ]


async def _first_activity(
    conn: asyncpg.Connection, tenant_id: str, journey_id: str
) -> datetime | None:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "select least((select min(enter_time) from enrollments"
        " where tenant_id = $1 and journey_id = $2),"
        " (select min(award_time) from awards where tenant_id = $1 and journey_id = $2))",
        tenant_id,
        journey_id,
    )


async def days(conn: asyncpg.Connection, tenant_id: str, q: ReportQuery) -> list[DayFigures]:
    """Every local day overlapping [start, end) from the journey's first entry or award on,
    with zeros on days without awards."""
    first_activity = await _first_activity(conn, tenant_id, q.journey_id)
    if first_activity is None or first_activity >= q.end:
        return []
    first = max(q.start, first_activity).astimezone(q.zone).date()
    last = (q.end - timedelta(microseconds=1)).astimezone(q.zone).date()
    starts = day_starts(first, last, q.zone)
    figures = [DayFigures(first + timedelta(days=i)) for i in range(len(starts))]
    for row in await conn.fetch(sql.statement("report_days"), *q.args(tenant_id), starts):
        # An award before the first day's start cannot exist (first_activity bounds them).
        day = figures[row["day"] - 1]
        if row["goal"]:
            day.goal_conversions += row["n"]
        else:
            day.named_conversions += row["n"]
        if row["value_currency"] is not None:
            currency = row["value_currency"]
            day.value[currency] = day.value.get(currency, 0) + int(row["micros"])
    return figures


async def credited_elsewhere(
    conn: asyncpg.Connection, tenant_id: str, q: ReportQuery
) -> tuple[int, list[tuple[str, int]]]:
    """How many goal events of the journey's participants went to other journeys, and the
    ELSEWHERE_TOP journeys that got most of them."""
    counts: dict[str, int] = defaultdict(int)
    for row in await conn.fetch(sql.statement("report_elsewhere"), *q.args(tenant_id)):
        counts[row["journey_id"]] = row["n"]
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:ELSEWHERE_TOP]
    return sum(counts.values()), top
