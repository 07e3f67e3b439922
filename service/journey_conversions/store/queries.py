"""Reads for people and the journey engine: explanations and award lists."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from journey_conversions import domain
from journey_conversions.attribution import decide
from journey_conversions.errors import FailedPrecondition, NotFound
from journey_conversions.store import codec, decisions
from journey_conversions.store.ingest import get_goal_event, get_touchpoints


async def explain(
    conn: asyncpg.Connection, tenant_id: str, event_id: str
) -> tuple[domain.GoalEvent, domain.Outcome]:
    """Re-runs the rule on the contact's history from the event on, with the state stored
    for earlier events: the same decision the store holds, with every candidate's verdict."""
    event = await get_goal_event(conn, tenant_id, event_id)
    if event is None:
        if await conn.fetchval(
            "select exists (select 1 from goal_outcomes where tenant_id = $1"
            " and goal_event_id = $2)",
            tenant_id,
            event_id,
        ):
            raise FailedPrecondition(
                "GOAL_EVENT_DROPPED",
                f"goal event {event_id!r} is older than the history kept (retention dropped"
                " it): its outcome stays in awards and reports, its explanation is gone",
            )
        raise NotFound("GOAL_EVENT_NOT_FOUND", f"goal event {event_id!r} is not known")
    histories = await decisions.load_histories(
        conn, tenant_id, [event.contact_id], event.occur_time
    )
    decision = decide(histories[event.contact_id])
    return event, decision.outcomes[event.event_id]


async def list_awards(
    conn: asyncpg.Connection,
    tenant_id: str,
    journey_id: str,
    contact_id: str,
    after: tuple[str, str],
    limit: int,
) -> list[domain.Award]:
    rows = await conn.fetch(
        "select * from awards where tenant_id = $1 and journey_id = $2"
        " and ($3 = '' or contact_id = $3) and (enrollment_id, conversion_id) > ($4, $5)"
        " order by enrollment_id, conversion_id limit $6",
        tenant_id,
        journey_id,
        contact_id,
        after[0],
        after[1],
        limit,
    )
    return [codec.award(r) for r in rows]


async def stored_outcomes(
    conn: asyncpg.Connection, tenant_id: str, event_ids: Sequence[str]
) -> dict[str, domain.Outcome]:
    """The outcomes the store holds for some goal events (without candidates), by event id."""
    rows = await conn.fetch(
        "select * from goal_outcomes where tenant_id = $1 and goal_event_id = any($2::text[])",
        tenant_id,
        list(event_ids),
    )
    credited = [r["touchpoint_event_id"] for r in rows if r["touchpoint_event_id"]]
    touchpoints = await get_touchpoints(conn, tenant_id, credited) if credited else {}
    return {
        r["goal_event_id"]: domain.Outcome(
            r["goal_event_id"],
            domain.OutcomeStatus(r["status"]),
            r["journey_id"],
            r["enrollment_id"],
            touchpoints.get(r["touchpoint_event_id"]),
        )
        for r in rows
    }
