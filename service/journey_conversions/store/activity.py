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


@dataclass(frozen=True, slots=True)
class DayCover:
    """How a range [start, end) is counted from the daily touchpoint counts: the UTC days
    [first_day, last_day) whole, plus the touchpoints of `add`, minus those of `subtract` (each
    a list of [from, to) spans, raw rows). A range's partial first and last days are read
    either directly (the part inside the range) or as the whole day less the part outside it,
    whichever spans less time, so at most half a day of raw rows is read at each end, and a
    range ending now reads only the touchpoints stamped after now (allowed clock skew)."""

    first_day: datetime
    last_day: datetime
    add: list[tuple[datetime, datetime]]
    subtract: list[tuple[datetime, datetime]]

    def args(self) -> tuple[datetime, datetime, list[datetime], list[datetime], list[int]]:
        """The statement's $4 to $8: the days, then each raw span's from, to and sign."""
        spans = [(a, b, 1) for a, b in self.add] + [(a, b, -1) for a, b in self.subtract]
        return (
            self.first_day,
            self.last_day,
            [a for a, _, _ in spans],
            [b for _, b, _ in spans],
            [sign for _, _, sign in spans],
        )


def day_cover(start: datetime, end: datetime) -> DayCover:
    day = timedelta(days=1)

    def floor(t: datetime) -> datetime:
        return _EPOCH_DAY + ((t - _EPOCH_DAY) // day) * day

    whole_from = floor(start) if floor(start) == start else floor(start) + day
    whole_to = floor(end)
    if whole_from > whole_to:  # the range lies inside one day
        pieces = [(floor(start), start, end)]
        whole_from = whole_to = floor(start)
    else:
        pieces = []
        if start < whole_from:
            pieces.append((whole_from - day, start, whole_from))
        if whole_to < end:
            pieces.append((whole_to, whole_to, end))
    add: list[tuple[datetime, datetime]] = []
    subtract: list[tuple[datetime, datetime]] = []
    first, last = whole_from, whole_to
    for day_start, a, b in pieces:
        outside = (a - day_start) + (day_start + day - b)
        if b - a <= outside:
            add.append((a, b))
            continue
        # The whole day from the counts, less its part outside the range.
        first, last = min(first, day_start), max(last, day_start + day)
        subtract += [(x, y) for x, y in ((day_start, a), (b, day_start + day)) if x < y]
    if first >= last:
        first = last = end
    return DayCover(first, last, add, subtract)


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
