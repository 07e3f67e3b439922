"""A journey's figures over a time range, read from committed rows only."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from journey_conversions import cohorts, domain
from journey_conversions.errors import NotFound
from journey_conversions.store import catalog
from journey_conversions.store import cohorts as cohort_store


@dataclass
class MessageFigures:
    message_id: str
    channel: domain.Channel
    touchpoints: dict[domain.Action, int] = field(default_factory=dict)
    credited_conversions: int = 0


@dataclass
class NamedFigures:
    conversion_id: str
    name: str
    count: int = 0
    value: dict[str, int] = field(default_factory=dict)  # currency -> micros


@dataclass
class Report:
    journey_id: str
    version: int
    start_time: datetime
    end_time: datetime
    entered: int = 0
    active: int = 0
    exited: int = 0
    engaged: int = 0
    messages: list[MessageFigures] = field(default_factory=list)
    goal_conversions: int = 0
    repeat_goal_events: int = 0
    value: dict[str, int] = field(default_factory=dict)
    named: list[NamedFigures] = field(default_factory=list)
    credited_elsewhere: int = 0
    cohort: cohorts.CohortFigures | None = None


# $1 tenant, $2 journey, $3 version (0: all), $4 start, $5 end
_ENROLLMENT_FIGURES = """
select
  count(*) filter (where enter_time >= $4 and enter_time < $5) as entered,
  count(*) filter (where enter_time < $5 and (exit_time is null or exit_time >= $4)) as active,
  count(*) filter (where exit_time >= $4 and exit_time < $5) as exited,
  count(*) filter (where enter_time < $5 and (exit_time is null or exit_time >= $4)
    and exists (
      select 1 from touchpoints t
      where t.tenant_id = $1 and t.contact_id = e.contact_id and t.journey_id = $2
        and t.occur_time >= greatest(e.enter_time, $4) and t.occur_time < $5
        and (e.exit_time is null or t.occur_time <= e.exit_time)
        and not (t.machine_generated and t.action = 2 and $6))) as engaged
from enrollments e
where tenant_id = $1 and journey_id = $2 and ($3 = 0 or version = $3)
"""

_TOUCHPOINTS_BY_MESSAGE = """
select message_id, action, count(*) as n from touchpoints t
where tenant_id = $1 and journey_id = $2 and occur_time >= $4 and occur_time < $5
  and ($3 = 0 or version = $3 or (version = 0 and exists (
    select 1 from journey_messages m where m.tenant_id = $1 and m.journey_id = $2
      and m.version = $3 and m.message_id = t.message_id)))
group by message_id, action
"""

_AWARDS = """
select conversion_id, message_id, value_currency, count(*) as n,
  coalesce(sum(value_micros), 0)::bigint as micros
from awards
where tenant_id = $1 and journey_id = $2 and ($3 = 0 or version = $3)
  and award_time >= $4 and award_time < $5
group by conversion_id, message_id, value_currency
"""

_REPEATS = """
select count(*) from goal_outcomes o join enrollments e
  on e.tenant_id = o.tenant_id and e.enrollment_id = o.enrollment_id
where o.tenant_id = $1 and o.journey_id = $2 and o.status = 2 and ($3 = 0 or e.version = $3)
  and o.occur_time >= $4 and o.occur_time < $5
"""

_CREDITED_ELSEWHERE = """
select count(*) from goal_outcomes o
where o.tenant_id = $1 and o.journey_id <> $2 and o.status in (1, 2)
  and o.occur_time >= $4 and o.occur_time < $5
  and exists (
    select 1 from enrollments e where e.tenant_id = $1 and e.contact_id = o.contact_id
      and e.journey_id = $2 and ($3 = 0 or e.version = $3)
      and e.enter_time <= o.occur_time and (e.exit_time is null or e.exit_time >= o.occur_time))
"""


async def journey_report(
    conn: asyncpg.Connection,
    tenant_id: str,
    journey_id: str,
    version: int,
    start: datetime,
    end: datetime,
    baseline: int = 0,
) -> Report:
    journey = await catalog.load_journey(conn, tenant_id, journey_id)
    if journey is None:
        raise catalog.journey_not_found(journey_id)
    versions = [v for v in journey.versions if version in (0, v.version)]
    for asked in (version, baseline):
        if asked and all(v.version != asked for v in journey.versions):
            raise NotFound("VERSION_NOT_FOUND", f"journey {journey_id!r} has no version {asked}")
    args = (tenant_id, journey_id, version, start, end)
    report = Report(journey_id, version, start, end)
    row = await conn.fetchrow(_ENROLLMENT_FIGURES, *args, journey.exclude_machine_opens)
    assert row is not None
    report.entered, report.active = row["entered"], row["active"]
    report.exited, report.engaged = row["exited"], row["engaged"]

    messages: dict[str, MessageFigures] = {}
    for v in versions:
        for m in v.messages:
            messages.setdefault(m.message_id, MessageFigures(m.message_id, m.channel))
    for row in await conn.fetch(_TOUCHPOINTS_BY_MESSAGE, *args):
        figures = messages.get(row["message_id"])
        if figures is not None:
            figures.touchpoints[domain.Action(row["action"])] = row["n"]

    conversions = await catalog.list_conversions(conn, tenant_id, journey_id)
    named = {c.conversion_id: NamedFigures(c.conversion_id, c.name) for c in conversions}
    value: dict[str, int] = defaultdict(int)
    for row in await conn.fetch(_AWARDS, *args):
        if row["value_currency"] is not None:
            value[row["value_currency"]] += row["micros"]
        if row["conversion_id"] == domain.GOAL_CONVERSION:
            report.goal_conversions += row["n"]
            if row["message_id"] in messages:
                messages[row["message_id"]].credited_conversions += row["n"]
        elif (figures_named := named.get(row["conversion_id"])) is not None:
            figures_named.count += row["n"]
            if row["value_currency"] is not None:
                currency = row["value_currency"]
                figures_named.value[currency] = figures_named.value.get(currency, 0) + row["micros"]
    report.messages = sorted(messages.values(), key=lambda m: m.message_id)
    report.named = list(named.values())
    report.value = dict(sorted(value.items()))
    report.repeat_goal_events = await conn.fetchval(_REPEATS, *args)
    report.credited_elsewhere = await conn.fetchval(_CREDITED_ELSEWHERE, *args)
    report.cohort = await _cohort(conn, tenant_id, journey, version, start, end, baseline)
    return report


async def _cohort(
    conn: asyncpg.Connection,
    tenant_id: str,
    journey: domain.Journey,
    version: int,
    start: datetime,
    end: datetime,
    baseline: int,
) -> cohorts.CohortFigures:
    journey_id = journey.journey_id
    counts = await cohort_store.version_counts(
        conn, tenant_id, journey_id, start, end, journey.exclude_machine_opens
    )
    return cohorts.figures(
        reported=[v.version for v in journey.versions if version in (0, v.version)],
        counts=counts,
        baseline=baseline or cohorts.default_baseline(counts),
        durations=await cohort_store.time_to_conversion(
            conn, tenant_id, journey_id, version, start, end
        ),
        values=await cohort_store.values(conn, tenant_id, journey_id, version, start, end),
    )
