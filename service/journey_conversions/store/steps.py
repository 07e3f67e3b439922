"""The journey engine's Convert and Evaluate-goal steps."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from journey_conversions import domain
from journey_conversions.criteria import in_force, matches
from journey_conversions.errors import FailedPrecondition, NotFound
from journey_conversions.store import catalog, codec, decisions, sql
from journey_conversions.store.ingest import enrollment_not_found, get_enrollment
from journey_conversions.store.locks import lock_contacts


class GoalCredit(enum.IntEnum):
    NOT_MET = 1
    THIS_JOURNEY = 2
    OTHER_JOURNEY = 3
    NONE = 4


@dataclass(frozen=True, slots=True)
class Evaluation:
    goal_met: bool
    goal_event_id: str
    credit: GoalCredit
    credited_journey_id: str
    awards: tuple[domain.Award, ...]


def _check_within(enrollment: domain.Enrollment, when: datetime, what: str) -> None:
    if when < enrollment.enter_time or (
        enrollment.exit_time is not None and when > enrollment.exit_time
    ):
        raise FailedPrecondition(
            "OUTSIDE_ENROLLMENT",
            f"{what} is outside enrollment {enrollment.enrollment_id!r}"
            f" (entered {enrollment.enter_time.isoformat()})",
        )


async def _locked_enrollment(
    conn: asyncpg.Connection, tenant_id: str, enrollment_id: str
) -> domain.Enrollment:
    found = await get_enrollment(conn, tenant_id, enrollment_id)
    if found is None:
        raise enrollment_not_found(enrollment_id)
    await lock_contacts(conn, tenant_id, [found.contact_id])
    locked = await get_enrollment(conn, tenant_id, enrollment_id)  # as of the lock
    assert locked is not None
    return locked


async def _insert_marks(
    conn: asyncpg.Connection,
    tenant_id: str,
    enrollment: domain.Enrollment,
    marks: list[domain.StepMark],
) -> None:
    await conn.executemany(
        "insert into step_marks (tenant_id, source, event_id, conversion_id, enrollment_id,"
        " contact_id, step_id, mark_time) values ($1, $2, $3, $4, $5, $6, $7, $8)"
        " on conflict do nothing",
        [
            (
                tenant_id,
                int(m.source),
                m.event_id,
                m.conversion_id,
                m.enrollment_id,
                enrollment.contact_id,
                m.step_id,
                m.mark_time,
            )
            for m in marks
        ],
    )


async def _awards(
    conn: asyncpg.Connection, tenant_id: str, enrollment_id: str, conversion_ids: list[str]
) -> list[domain.Award]:
    rows = await conn.fetch(
        "select * from awards where tenant_id = $1 and enrollment_id = $2"
        " and conversion_id = any($3::text[]) order by conversion_id",
        tenant_id,
        enrollment_id,
        conversion_ids,
    )
    return [codec.award(r) for r in rows]


async def mark_conversion(
    conn: asyncpg.Connection, tenant_id: str, mark: domain.StepMark, horizon: datetime
) -> domain.Award:
    """Awards one named conversion; an enrollment keeps its earliest award of a conversion."""
    enrollment = await _locked_enrollment(conn, tenant_id, mark.enrollment_id)
    conversions = await catalog.list_conversions(conn, tenant_id, enrollment.journey_id)
    if mark.conversion_id not in {c.conversion_id for c in conversions}:
        raise NotFound(
            "CONVERSION_NOT_FOUND",
            f"journey {enrollment.journey_id!r} has no conversion {mark.conversion_id!r}",
        )
    _check_within(enrollment, mark.mark_time, "mark_time")
    await _insert_marks(conn, tenant_id, enrollment, [mark])
    await decisions.redecide(conn, tenant_id, [enrollment.contact_id], horizon)
    (award,) = await _awards(conn, tenant_id, enrollment.enrollment_id, [mark.conversion_id])
    return award


async def evaluate_goal(
    conn: asyncpg.Connection,
    tenant_id: str,
    event_id: str,
    enrollment_id: str,
    step_id: str,
    evaluate_time: datetime,
    horizon: datetime,
) -> Evaluation:
    """Whether the goal was met during the enrollment, where its conversion went, and the
    named conversions this step awards when it was met."""
    enrollment = await _locked_enrollment(conn, tenant_id, enrollment_id)
    journey = await catalog.load_journey(conn, tenant_id, enrollment.journey_id)
    assert journey is not None
    if in_force(journey.goal_history, evaluate_time) is None:
        raise FailedPrecondition(
            "JOURNEY_HAS_NO_GOAL", f"journey {journey.journey_id!r} has no goal in force"
        )
    _check_within(enrollment, evaluate_time, "evaluate_time")
    met = await _first_goal_event(conn, tenant_id, enrollment, journey, evaluate_time)
    if met is None:
        return Evaluation(False, "", GoalCredit.NOT_MET, "", ())
    credit, credited = await _credit(conn, tenant_id, enrollment, met)
    tied = [
        c.conversion_id
        for c in await catalog.list_conversions(conn, tenant_id, journey.journey_id)
        if c.award_on_goal
    ]
    if tied:
        marks = [
            domain.StepMark(
                event_id,
                enrollment_id,
                conversion_id,
                step_id,
                evaluate_time,
                domain.AwardSource.EVALUATE_GOAL_STEP,
            )
            for conversion_id in tied
        ]
        await _insert_marks(conn, tenant_id, enrollment, marks)
        await decisions.redecide(conn, tenant_id, [enrollment.contact_id], horizon)
    awards = await _awards(conn, tenant_id, enrollment_id, tied)
    return Evaluation(True, met, credit, credited, tuple(awards))


async def _first_goal_event(
    conn: asyncpg.Connection,
    tenant_id: str,
    enrollment: domain.Enrollment,
    journey: domain.Journey,
    until: datetime,
) -> str | None:
    """The id of the first goal event meeting the goal during the enrollment, up to `until`."""
    rows = await conn.fetch(
        "select * from goal_events where tenant_id = $1 and contact_id = $2"
        " and occur_time >= $3 and occur_time <= $4 order by occur_time, event_id",
        tenant_id,
        enrollment.contact_id,
        enrollment.enter_time,
        until,
    )
    for row in rows:
        event = codec.goal_event(row)
        goal = in_force(journey.goal_history, event.occur_time)
        if goal is not None and matches(goal, event):
            return event.event_id
    # Met by an event that retention dropped (older than any decision reads)?
    met: str | None = await conn.fetchval(
        sql.statement("goal_met_event"), tenant_id, enrollment.enrollment_id, until
    )
    return met


async def _credit(
    conn: asyncpg.Connection,
    tenant_id: str,
    enrollment: domain.Enrollment,
    met: str,
) -> tuple[GoalCredit, str]:
    own = await _awards(conn, tenant_id, enrollment.enrollment_id, [domain.GOAL_CONVERSION])
    if own:
        return GoalCredit.THIS_JOURNEY, enrollment.journey_id
    winner = await conn.fetchval(
        "select journey_id from goal_outcomes where tenant_id = $1 and goal_event_id = $2",
        tenant_id,
        met,
    )
    if winner and winner != enrollment.journey_id:
        return GoalCredit.OTHER_JOURNEY, str(winner)
    return GoalCredit.NONE, ""
