"""Re-deciding contacts: load their history, run the pure rule, write only the differences.

Callers hold the contacts' advisory locks (store.locks) in the same transaction, so the history
read here cannot change before the differences are written and committed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from journey_conversions import domain
from journey_conversions.attribution import decide
from journey_conversions.store import codec, credits, derived, elsewhere, outbox, sql
from journey_conversions.store import rules as journey_rules
from journey_conversions.store.locks import lock_contacts


@dataclass
class _Loaded:
    enrollments: list[domain.Enrollment] = field(default_factory=list)
    touchpoints: list[domain.Touchpoint] = field(default_factory=list)
    goal_events: list[domain.GoalEvent] = field(default_factory=list)
    marks: list[domain.StepMark] = field(default_factory=list)
    converted_before: set[str] = field(default_factory=set)
    awarded_before: set[tuple[str, str]] = field(default_factory=set)


async def load_histories(
    conn: asyncpg.Connection, tenant_id: str, contacts: Sequence[str], since: datetime | None
) -> dict[str, domain.ContactHistory]:
    """Each contact's history from `since` on (None: all of it), in a few set-based queries."""
    contacts = sorted(set(contacts))
    loaded: dict[str, _Loaded] = defaultdict(_Loaded)
    # All enrollments, ended ones too: they are few per contact, cannot change a decision
    # after they end, and explanations name their journeys (NOT_ACTIVE).
    rows = await conn.fetch(
        "select * from enrollments where tenant_id = $1 and contact_id = any($2::text[])",
        tenant_id,
        contacts,
    )
    for row in rows:
        loaded[row["contact_id"]].enrollments.append(codec.enrollment(row))
    rules = await journey_rules.load_rules(conn, tenant_id, [r["journey_id"] for r in rows])
    longest = max((r.window for r in rules.values()), default=timedelta(0))
    if rules:
        for row in await conn.fetch(
            "select * from touchpoints where tenant_id = $1 and contact_id = any($2::text[])"
            " and journey_id = any($3::text[])"
            " and ($4::timestamptz is null or occur_time >= $4)",
            tenant_id,
            contacts,
            sorted(rules),
            None if since is None else since - longest,
        ):
            loaded[row["contact_id"]].touchpoints.append(codec.touchpoint(row))
    for row in await conn.fetch(
        "select * from goal_events where tenant_id = $1 and contact_id = any($2::text[])"
        " and ($3::timestamptz is null or occur_time >= $3)",
        tenant_id,
        contacts,
        since,
    ):
        loaded[row["contact_id"]].goal_events.append(codec.goal_event(row))
    for row in await conn.fetch(
        "select * from step_marks where tenant_id = $1 and contact_id = any($2::text[])"
        " and ($3::timestamptz is null or mark_time >= $3)",
        tenant_id,
        contacts,
        since,
    ):
        loaded[row["contact_id"]].marks.append(
            domain.StepMark(
                row["event_id"],
                row["enrollment_id"],
                row["conversion_id"],
                row["step_id"],
                row["mark_time"],
                domain.AwardSource(row["source"]),
            )
        )
    if since is not None:
        for row in await conn.fetch(
            "select contact_id, enrollment_id, conversion_id from awards"
            " where tenant_id = $1 and contact_id = any($2::text[]) and award_time < $3",
            tenant_id,
            contacts,
            since,
        ):
            state = loaded[row["contact_id"]]
            if row["conversion_id"] == domain.GOAL_CONVERSION:
                state.converted_before.add(row["enrollment_id"])
            else:
                state.awarded_before.add((row["enrollment_id"], row["conversion_id"]))
    return {
        contact: domain.ContactHistory(
            contact_id=contact,
            journeys={j: rules[j] for j in {e.journey_id for e in loaded[contact].enrollments}},
            enrollments=tuple(loaded[contact].enrollments),
            touchpoints=tuple(loaded[contact].touchpoints),
            goal_events=tuple(loaded[contact].goal_events),
            marks=tuple(loaded[contact].marks),
            since=since,
            converted_before=frozenset(loaded[contact].converted_before),
            awarded_before=frozenset(loaded[contact].awarded_before),
        )
        for contact in contacts
    }


async def contacts_with_goal_events(
    conn: asyncpg.Connection, tenant_id: str, journey_id: str, since: datetime
) -> list[str]:
    """Contacts of a journey with goal events from `since` on: those a change of the
    journey's goal or window can re-decide."""
    rows = await conn.fetch(
        "select distinct e.contact_id from enrollments e where e.tenant_id = $1"
        " and e.journey_id = $2 and exists (select 1 from goal_events g where g.tenant_id = $1"
        " and g.contact_id = e.contact_id and g.occur_time >= $3)",
        tenant_id,
        journey_id,
        since,
    )
    return sorted(r["contact_id"] for r in rows)


async def contacts_with_events_since(
    conn: asyncpg.Connection, tenant_id: str, changes: Iterable[tuple[str, datetime]]
) -> list[str]:
    """The contacts whose entries or exits (contact, time) can change anything: those with a
    goal event or step mark at or after the time (only those depend on participation)."""
    earliest: dict[str, datetime] = {}
    for contact, when in changes:
        earliest[contact] = min(when, earliest.get(contact, when))
    if not earliest:
        return []
    contacts = sorted(earliest)
    rows = await conn.fetch(
        "select x.c from unnest($2::text[], $3::timestamptz[]) as x(c, t)"
        " where exists (select 1 from goal_events where tenant_id = $1 and contact_id = x.c"
        " and occur_time >= x.t) or exists (select 1 from step_marks where tenant_id = $1"
        " and contact_id = x.c and mark_time >= x.t)",
        tenant_id,
        contacts,
        [earliest[c] for c in contacts],
    )
    return sorted(r["c"] for r in rows)


async def contacts_with_awards(
    conn: asyncpg.Connection, tenant_id: str, journey_id: str, conversion_id: str, since: datetime
) -> list[str]:
    """Contacts holding an open award of a conversion: those its value change updates."""
    rows = await conn.fetch(
        "select distinct contact_id from awards where tenant_id = $1 and journey_id = $2"
        " and conversion_id = $3 and award_time >= $4",
        tenant_id,
        journey_id,
        conversion_id,
        since,
    )
    return sorted(r["contact_id"] for r in rows)


@dataclass(frozen=True, slots=True)
class Changes:
    outcomes_written: int
    awards_changed: int
    # every re-decided goal event's outcome, by event id (the rule's, with its candidates)
    outcomes: Mapping[str, domain.Outcome] = field(default_factory=dict)


def redecision_start(horizon: datetime, changed: Iterable[datetime]) -> datetime:
    """Where re-deciding must start after changes at these times: the rule is causal (an
    event's outcome and awards depend only on what happened at or before it), so nothing
    before the earliest change can move; never before the horizon, where decisions are final.
    An on-time goal event re-decides itself alone, reading one window of touchpoints, instead
    of every event of its contact since the horizon (allowed lateness, 30 days by default)."""
    return max(horizon, min(changed, default=horizon))


async def redecide(
    conn: asyncpg.Connection, tenant_id: str, contacts: Iterable[str], since: datetime
) -> Changes:
    """Re-decides the contacts' goal events and awards from `since` on and applies the changes."""
    contact_list = sorted(set(contacts))
    if not contact_list:
        return Changes(0, 0)
    histories = await load_histories(conn, tenant_id, contact_list, since)
    decisions = {c: decide(h) for c, h in histories.items()}
    outcomes = await _write_outcomes(conn, tenant_id, histories, decisions, since)
    events = await _write_awards(conn, tenant_id, contact_list, decisions, since)
    converted = {a.enrollment_id for _, a in events if a.conversion_id == domain.GOAL_CONVERSION}
    await _write_enrollment_outcomes(conn, tenant_id, histories, decisions, since, converted)
    await credits.write(conn, tenant_id, contact_list, decisions.values(), since)
    await elsewhere.write(conn, tenant_id, histories, decisions, since)
    # Last: the outbox head's row lock, which serializes the tenant's writers, is then held
    # only from here to COMMIT.
    await outbox.append(conn, tenant_id, events)
    decided = {e: o for d in decisions.values() for e, o in d.outcomes.items()}
    return Changes(outcomes, len(events), decided)


async def _write_enrollment_outcomes(
    conn: asyncpg.Connection,
    tenant_id: str,
    histories: dict[str, domain.ContactHistory],
    decisions: dict[str, domain.Decision],
    since: datetime,
    converted: set[str],
) -> None:
    """Each re-decided enrollment's goal-met time (the report's holdout lift), and the goal
    conversion time of those whose goal award changed (`converted`)."""
    enrollment_ids: list[str] = []
    times: list[datetime | None] = []
    for contact, history in histories.items():
        for enrollment in history.enrollments:
            enrollment_ids.append(enrollment.enrollment_id)
            times.append(decisions[contact].goal_met.get(enrollment.enrollment_id))
    if enrollment_ids:
        await conn.execute(
            sql.statement("enrollment_outcomes"),
            tenant_id,
            since,
            enrollment_ids,
            times,
            [e in converted for e in enrollment_ids],
        )


async def lock_and_redecide(
    conn: asyncpg.Connection, tenant_id: str, contacts: Iterable[str], since: datetime
) -> Changes:
    """For changes that are not a contact's own event (a definition): take the contacts'
    locks, then re-decide them."""
    contact_list = sorted(set(contacts))
    await lock_contacts(conn, tenant_id, contact_list)
    return await redecide(conn, tenant_id, contact_list, since)


def _outcome_row(
    tenant_id: str, event: domain.GoalEvent, outcome: domain.Outcome
) -> tuple[Any, ...]:
    touch = outcome.touchpoint
    return (
        tenant_id,
        event.event_id,
        event.contact_id,
        event.occur_time,
        int(outcome.status),
        outcome.journey_id,
        outcome.enrollment_id,
        touch.event_id if touch else "",
        touch.message_id if touch else "",
        touch.occur_time if touch else None,
    )


OUTCOMES = derived.Table(
    name="goal_outcomes",
    columns=(
        "tenant_id",
        "goal_event_id",
        "contact_id",
        "occur_time",
        "status",
        "journey_id",
        "enrollment_id",
        "touchpoint_event_id",
        "message_id",
        "touchpoint_time",
    ),
    key=("goal_event_id",),
    key_types=("text",),
    time_column="occur_time",
)


async def _write_outcomes(
    conn: asyncpg.Connection,
    tenant_id: str,
    histories: dict[str, domain.ContactHistory],
    decisions: dict[str, domain.Decision],
    since: datetime,
) -> int:
    computed = {
        (event.event_id,): _outcome_row(
            tenant_id, event, decisions[contact].outcomes[event.event_id]
        )
        for contact, history in histories.items()
        for event in history.goal_events
    }
    return await derived.sync(conn, OUTCOMES, tenant_id, sorted(histories), since, computed)


def _award_row(tenant_id: str, award: domain.Award) -> tuple[Any, ...]:
    currency, micros = codec.money_columns(award.value)
    return (
        tenant_id,
        award.enrollment_id,
        award.conversion_id,
        award.contact_id,
        award.journey_id,
        award.version,
        int(award.source),
        award.award_time,
        award.goal_event_id,
        award.touchpoint_event_id,
        award.message_id,
        award.step_id,
        currency,
        micros,
        award.touchpoint_time,
    )


_AWARD_COLUMNS = (
    "tenant_id, enrollment_id, conversion_id, contact_id, journey_id, version, source,"
    " award_time, goal_event_id, touchpoint_event_id, message_id, step_id, value_currency,"
    " value_micros, touchpoint_time"
)


async def _write_awards(
    conn: asyncpg.Connection,
    tenant_id: str,
    contacts: list[str],
    decisions: dict[str, domain.Decision],
    since: datetime,
) -> list[tuple[domain.ConversionEventType, domain.Award]]:
    """Writes the differences between the stored awards and the decided ones; returns the
    conversion events they make, for the outbox."""
    stored = {
        (r["enrollment_id"], r["conversion_id"]): codec.award(r)
        for r in await conn.fetch(
            f"select {_AWARD_COLUMNS} from awards"
            " where tenant_id = $1 and contact_id = any($2::text[]) and award_time >= $3",
            tenant_id,
            contacts,
            since,
        )
    }
    computed = {key: a for d in decisions.values() for key, a in d.awards.items()}
    events: list[tuple[domain.ConversionEventType, domain.Award]] = []
    upserts: list[domain.Award] = []
    for key in sorted(computed.keys() | stored.keys()):
        before, after = stored.get(key), computed.get(key)
        if after is None:
            assert before is not None
            events.append((domain.ConversionEventType.RETRACTED, before))
        elif before is None:
            events.append((domain.ConversionEventType.AWARDED, after))
            upserts.append(after)
        elif before != after:
            events.append((domain.ConversionEventType.UPDATED, after))
            upserts.append(after)
    retracted = [a for kind, a in events if kind == domain.ConversionEventType.RETRACTED]
    if retracted:
        await conn.execute(
            "delete from awards as a using unnest($2::text[], $3::text[]) as k(e, c)"
            " where a.tenant_id = $1 and a.enrollment_id = k.e and a.conversion_id = k.c",
            tenant_id,
            [a.enrollment_id for a in retracted],
            [a.conversion_id for a in retracted],
        )
    if upserts:
        await conn.executemany(
            sql.statement("upsert_awards"),
            [_award_row(tenant_id, a) for a in upserts],
        )
    return events
