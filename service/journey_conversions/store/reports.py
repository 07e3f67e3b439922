"""A journey's figures over a time range, read from committed rows only."""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime

import asyncpg

from journey_conversions import cohorts, domain
from journey_conversions.errors import FailedPrecondition, NotFound
from journey_conversions.store import activity, catalog, sql
from journey_conversions.store import cohorts as cohort_store
from journey_conversions.store.report_query import ReportQuery

# The credit models, last touch (the attribution rule) first; the others split (credit.py).
CREDIT_MODELS = ("last_touch", "first_touch", "linear", "position_based", "time_decay")


@dataclass
class ModelCredit:
    conversions: float = 0.0
    value: dict[str, float] = field(default_factory=dict)  # currency -> micros

    def add(self, conversions: float, currency: str | None, micros: float | None) -> None:
        self.conversions += conversions
        if currency is not None and micros is not None:
            self.value[currency] = self.value.get(currency, 0.0) + micros


@dataclass
class MessageFigures:
    message_id: str
    channel: domain.Channel
    touchpoints: dict[domain.Action, int] = field(default_factory=dict)
    credited_conversions: int = 0
    credits: dict[str, ModelCredit] = field(
        default_factory=lambda: {model: ModelCredit() for model in CREDIT_MODELS}
    )


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
    credited_elsewhere_top: list[tuple[str, int]] = field(default_factory=list)
    cohort: cohorts.CohortFigures | None = None
    days: list[activity.DayFigures] = field(default_factory=list)
    time_zone: str = "UTC"
    full: bool = True  # False: the activity summary only (no cohort, credits or days)


async def journey_report(
    conn: asyncpg.Connection,
    tenant_id: str,
    q: ReportQuery,
    helper: asyncpg.Connection | None = None,
) -> Report:
    """The report, every section read from one snapshot (so its figures agree with each
    other). Call it first in its transaction. With a `helper` connection (idle, outside any
    transaction), half of the sections are read on it at the same time, in a transaction that
    imports the same snapshot: the statements are independent and each uses one core, so two
    at once answer sooner on a machine with cores to spare."""
    await _begin_report(conn)
    journey = await catalog.load_journey(conn, tenant_id, q.journey_id)
    if journey is None:
        raise catalog.journey_not_found(q.journey_id)
    for asked in (q.version, q.baseline):
        if asked and all(v.version != asked for v in journey.versions):
            raise NotFound("VERSION_NOT_FOUND", f"journey {q.journey_id!r} has no version {asked}")
    report = Report(q.journey_id, q.version, q.start, q.end, time_zone=q.zone.key, full=q.full)
    if helper is None:
        cohort = await _cohort_lane(conn, tenant_id, journey, q, report)
        await _activity_lane(conn, tenant_id, journey, q, report)
    else:
        snapshot = await conn.fetchval("select pg_export_snapshot()")
        async with helper.transaction(isolation="repeatable_read", readonly=True):
            await _import_snapshot(helper, snapshot)
            try:
                async with asyncio.TaskGroup() as lanes:
                    cohort_task = lanes.create_task(
                        _cohort_lane(conn, tenant_id, journey, q, report)
                    )
                    lanes.create_task(_activity_lane(helper, tenant_id, journey, q, report))
            except ExceptionGroup as failed:
                # As from one connection: the first error, for the caller to map (a lost
                # connection is UNAVAILABLE, a refused figure FAILED_PRECONDITION).
                raise failed.exceptions[0] from None
        cohort = cohort_task.result()
    report.cohort = cohort
    _check_values(report)
    return report


async def _begin_report(conn: asyncpg.Connection) -> None:
    await conn.execute("set transaction isolation level repeatable read, read only")
    await _plan_for_the_journey(conn)


async def _plan_for_the_journey(conn: asyncpg.Connection) -> None:
    # Journeys differ in size by orders of magnitude: a cached generic plan, made for an
    # average journey, would nest-loop over a large one (measured 3x slower). Plan each
    # statement for its journey and range.
    await conn.execute("set local plan_cache_mode = force_custom_plan")
    # The statements read few rows through indexes, but a large journey's estimates can cross
    # jit_above_cost: compiling then cost more than the query (measured 45 ms of 490).
    await conn.execute("set local jit = off")


_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+(-[0-9A-F]+)?")


async def _import_snapshot(conn: asyncpg.Connection, snapshot: str) -> None:
    """Makes `conn`'s new transaction see exactly what the exporting one sees. SET takes no
    parameters: the id, which Postgres made, is checked to be one before it is quoted."""
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"not a snapshot id: {snapshot!r}")
    await conn.execute(f"set transaction snapshot '{snapshot}'")
    await _plan_for_the_journey(conn)


async def _cohort_lane(
    conn: asyncpg.Connection,
    tenant_id: str,
    journey: domain.Journey,
    q: ReportQuery,
    report: Report,
) -> cohorts.CohortFigures | None:
    """Participation and, with the full view, the cohort and the days."""
    rows = await cohort_store.read(conn, tenant_id, q, journey.exclude_machine_opens)
    shown = rows.participation
    report.entered, report.active = shown.entered, shown.active
    report.exited, report.engaged = shown.exited, shown.engaged
    if not q.full:
        return None
    report.days = await activity.days(conn, tenant_id, q)
    return await _cohort(conn, tenant_id, journey, q, rows)


async def _activity_lane(
    conn: asyncpg.Connection,
    tenant_id: str,
    journey: domain.Journey,
    q: ReportQuery,
    report: Report,
) -> None:
    """Touchpoints and credits per message, awards, repeats and credited elsewhere."""
    await _messages_and_awards(conn, tenant_id, journey, q, report)
    report.repeat_goal_events = await conn.fetchval(
        sql.statement("report_repeats"), *q.args(tenant_id)
    )
    report.credited_elsewhere, top = await activity.credited_elsewhere(conn, tenant_id, q)
    if q.full:
        report.credited_elsewhere_top = top


_INT64 = range(-(2**63), 2**63)


def _check_values(report: Report) -> None:
    """Every value total fits Money.amount_micros (int64), or the report is refused with a
    clear error: two values near the limit summed past it, and the report failed with
    INTERNAL (bigint out of range in SQL, or protobuf refusing the number)."""
    totals = [report.value, *(n.value for n in report.named), *(d.value for d in report.days)]
    if report.cohort is not None:
        totals.extend(v.value for v in report.cohort.versions)
    for total in totals:
        for currency, micros in total.items():
            if micros not in _INT64:
                raise FailedPrecondition(
                    "REPORT_VALUE_OUT_OF_RANGE",
                    f"a {currency} value total of the report exceeds what Money.amount_micros"
                    " (int64) can hold; ask for a shorter range or a single version",
                )


async def _messages_and_awards(
    conn: asyncpg.Connection,
    tenant_id: str,
    journey: domain.Journey,
    q: ReportQuery,
    report: Report,
) -> None:
    """Touchpoints and credited conversions per message, awards, value and named conversions."""
    args = q.args(tenant_id)
    messages: dict[str, MessageFigures] = {}
    for v in journey.versions:
        if q.version in (0, v.version):
            for m in v.messages:
                messages.setdefault(m.message_id, MessageFigures(m.message_id, m.channel))
    cover = activity.day_cover(q.start, q.end)
    touched = await conn.fetch(
        sql.statement("report_touchpoints"), tenant_id, q.journey_id, q.version, *cover.args()
    )
    for row in touched:
        figures = messages.get(row["message_id"])
        if figures is not None:
            figures.touchpoints[domain.Action(row["action"])] = row["n"]

    conversions = await catalog.list_conversions(conn, tenant_id, q.journey_id)
    named = {c.conversion_id: NamedFigures(c.conversion_id, c.name) for c in conversions}
    value: dict[str, int] = defaultdict(int)
    for row in await conn.fetch(sql.statement("report_awards"), *args):
        micros = int(row["micros"])  # numeric: a sum may exceed int64 (see _check_values)
        if row["value_currency"] is not None:
            value[row["value_currency"]] += micros
        if row["conversion_id"] == domain.GOAL_CONVERSION:
            report.goal_conversions += row["n"]
            if (message := messages.get(row["message_id"])) is not None:
                message.credited_conversions += row["n"]
                message.credits["last_touch"].add(row["n"], row["value_currency"], micros)
        elif (figures_named := named.get(row["conversion_id"])) is not None:
            figures_named.count += row["n"]
            if row["value_currency"] is not None:
                currency = row["value_currency"]
                figures_named.value[currency] = figures_named.value.get(currency, 0) + micros
    for row in await conn.fetch(sql.statement("report_credits"), *args) if q.full else []:
        if (message := messages.get(row["message_id"])) is not None:
            for model in CREDIT_MODELS[1:]:
                message.credits[model].add(
                    row[model], row["value_currency"], row[f"{model}_micros"]
                )
    report.messages = sorted(messages.values(), key=lambda m: m.message_id)
    report.named = list(named.values())
    report.value = dict(sorted(value.items()))


async def _cohort(
    conn: asyncpg.Connection,
    tenant_id: str,
    journey: domain.Journey,
    q: ReportQuery,
    rows: cohort_store.CohortRows,
) -> cohorts.CohortFigures:
    reported = [v for v in journey.versions if q.version in (0, v.version)]
    figures = cohorts.figures(
        reported=[v.version for v in reported],
        counts=rows.counts,
        baseline=q.baseline or cohorts.default_baseline(rows.counts),
        durations=rows.durations,
        values=rows.values,
    )
    known = {
        cohorts.STEP: {m.step_id for v in reported for m in v.messages if m.step_id},
        cohorts.PATH: {m.path for v in reported for m in v.messages if m.path},
    }
    segments = await cohort_store.segments(conn, tenant_id, q, known)
    return replace(figures, steps=segments[cohorts.STEP], paths=segments[cohorts.PATH])
