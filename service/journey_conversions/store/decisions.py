"""Re-deciding contacts: load their history, run the pure rule, write only the differences.

Callers hold the contacts' advisory locks (store.locks) in the same transaction, so the history
read here cannot change before the differences are written and committed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from journey_conversions import domain
from journey_conversions.attribution import decide
from journey_conversions.store import codec, credits, derived, elsewhere, outbox
from journey_conversions.store import rules as journey_rules
from journey_conversions.store.locks import lock_contacts

_Decoded = TypeVar("_Decoded")


_HISTORIES = "select * from contact_histories($1, $2::text[], $3::timestamptz)"
# With the rows derived before (migration 0011), for a re-decision.
_HISTORIES_AND_DERIVED = (
    "select * from contact_histories($1, $2::text[], $3::timestamptz),"
    " derived_rows($1, $2::text[], $3::timestamptz)"
)


async def load_histories(
    conn: asyncpg.Connection, tenant_id: str, contacts: Sequence[str], since: datetime | None
) -> dict[str, domain.ContactHistory]:
    """Each contact's history from `since` on (None: all of it), in one statement (the
    function contact_histories, migration 0010), and the journeys' rules kept by this server
    unless they moved."""
    contacts = sorted(set(contacts))
    row = await conn.fetchrow(_HISTORIES, tenant_id, contacts, since)
    assert row is not None  # one row of arrays, each null when empty
    return await _histories(conn, tenant_id, contacts, since, row)


async def load_for_redecision(
    conn: asyncpg.Connection, tenant_id: str, contacts: Sequence[str], since: datetime
) -> tuple[dict[str, domain.ContactHistory], asyncpg.Record]:
    """As load_histories, in the same statement, with the rows the contacts' last decisions
    derived from `since` on (columns stored_outcomes, stored_awards, stored_credits,
    stored_elsewhere: arrays of each table's rows, null when none), which the new decision is
    compared with."""
    contacts = sorted(set(contacts))
    row = await conn.fetchrow(_HISTORIES_AND_DERIVED, tenant_id, contacts, since)
    assert row is not None
    return await _histories(conn, tenant_id, contacts, since, row), row


async def _histories(
    conn: asyncpg.Connection,
    tenant_id: str,
    contacts: list[str],
    since: datetime | None,
    row: asyncpg.Record,
) -> dict[str, domain.ContactHistory]:
    revisions = list(
        zip(row["journey_ids"] or (), row["revisions"] or (), row["mine"] or (), strict=True)
    )
    rules = await journey_rules.rules_at(conn, tenant_id, revisions)
    enrollments = _by_contact(row["enrollments"], codec.enrollment)
    touchpoints = _by_contact(row["touchpoints"], codec.touchpoint)
    goal_events = _by_contact(row["goal_events"], codec.goal_event)
    marks = _by_contact(row["step_marks"], _step_mark)
    converted_before: dict[str, set[str]] = defaultdict(set)
    awarded_before: dict[str, set[tuple[str, str]]] = defaultdict(set)
    settled = zip(
        row["settled_contacts"] or (),
        row["settled_enrollments"] or (),
        row["settled_conversions"] or (),
        strict=True,
    )
    for contact, enrollment_id, conversion_id in settled:
        if conversion_id == domain.GOAL_CONVERSION:
            converted_before[contact].add(enrollment_id)
        else:
            awarded_before[contact].add((enrollment_id, conversion_id))
    return {
        contact: domain.ContactHistory(
            contact_id=contact,
            journeys={j: rules[j] for j in {e.journey_id for e in enrollments[contact]}},
            enrollments=tuple(enrollments[contact]),
            touchpoints=tuple(touchpoints[contact]),
            goal_events=tuple(goal_events[contact]),
            marks=tuple(marks[contact]),
            since=since,
            converted_before=frozenset(converted_before[contact]),
            awarded_before=frozenset(awarded_before[contact]),
        )
        for contact in contacts
    }


def _by_contact(
    rows: Sequence[asyncpg.Record] | None, decode: Callable[[asyncpg.Record], _Decoded]
) -> defaultdict[str, list[_Decoded]]:
    """Rows decoded, grouped by their contact_id."""
    grouped: defaultdict[str, list[_Decoded]] = defaultdict(list)
    for row in rows or ():
        grouped[row["contact_id"]].append(decode(row))
    return grouped


def _step_mark(row: asyncpg.Record) -> domain.StepMark:
    return domain.StepMark(
        row["event_id"],
        row["enrollment_id"],
        row["conversion_id"],
        row["step_id"],
        row["mark_time"],
        domain.AwardSource(row["source"]),
    )


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
    histories, stored = await load_for_redecision(conn, tenant_id, contact_list, since)
    decisions = {c: decide(h) for c, h in histories.items()}
    outcomes = _outcomes(tenant_id, stored["stored_outcomes"], histories, decisions)
    credit_rows = credits.difference(tenant_id, stored["stored_credits"], decisions.values())
    elsewhere_rows = elsewhere.difference(
        tenant_id, stored["stored_elsewhere"], histories, decisions
    )
    awards = _awards(tenant_id, stored["stored_awards"], decisions)
    converted = {
        a.enrollment_id for _, a in awards.events if a.conversion_id == domain.GOAL_CONVERSION
    }
    enrollment_ids, goal_met = _goal_met_times(histories, decisions)
    await conn.execute(
        _WRITE_DECISION,
        tenant_id,
        since,
        outcomes.fresh,
        outcomes.gone,
        credit_rows.fresh,
        credit_rows.gone,
        elsewhere_rows.fresh,
        elsewhere_rows.gone,
        awards.fresh,
        awards.gone,
        enrollment_ids,
        goal_met,
        [e in converted for e in enrollment_ids],
        *outbox.columns(awards.events),
        outbox.NOTIFY_CHANNEL,
    )
    decided = {e: o for d in decisions.values() for e, o in d.outcomes.items()}
    return Changes(len(outcomes.fresh), len(awards.events), decided)


# Everything a re-decision writes, in one round trip (migration 0012).
_WRITE_DECISION = (
    "select write_decision($1, $2, $3::goal_outcomes[], $4::goal_outcomes[],"
    " $5::conversion_credits[], $6::conversion_credits[], $7::credited_elsewhere[],"
    " $8::credited_elsewhere[], $9::awards[], $10::awards[], $11::text[], $12::timestamptz[],"
    " $13::boolean[], $14::smallint[], $15::text[], $16)"
)


def _goal_met_times(
    histories: dict[str, domain.ContactHistory], decisions: dict[str, domain.Decision]
) -> tuple[list[str], list[datetime | None]]:
    """Each re-decided enrollment, and its goal-met time (None: not met)."""
    enrollment_ids: list[str] = []
    times: list[datetime | None] = []
    for contact, history in histories.items():
        for enrollment in history.enrollments:
            enrollment_ids.append(enrollment.enrollment_id)
            times.append(decisions[contact].goal_met.get(enrollment.enrollment_id))
    return enrollment_ids, times


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
)


def _outcomes(
    tenant_id: str,
    stored: Sequence[asyncpg.Record] | None,
    histories: dict[str, domain.ContactHistory],
    decisions: dict[str, domain.Decision],
) -> derived.Difference:
    computed = {
        (event.event_id,): _outcome_row(
            tenant_id, event, decisions[contact].outcomes[event.event_id]
        )
        for contact, history in histories.items()
        for event in history.goal_events
    }
    return derived.difference(OUTCOMES, stored, computed)


def _award_row(tenant_id: str, award: domain.Award) -> tuple[Any, ...]:
    """The award as a row of the awards table; its enrollment's entry time and arm are left
    to write_decision, which reads them from the enrollment."""
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
        None,  # enter_time
        None,  # holdout
    )


@dataclass(frozen=True, slots=True)
class _AwardChanges:
    """The conversion events the award differences make (for the outbox), and the award rows
    to write and to delete."""

    events: list[tuple[domain.ConversionEventType, domain.Award]]
    fresh: list[tuple[Any, ...]]
    gone: list[tuple[Any, ...]]


def _awards(
    tenant_id: str,
    stored_rows: Sequence[asyncpg.Record] | None,
    decisions: dict[str, domain.Decision],
) -> _AwardChanges:
    """The differences between the stored awards (`stored_rows`: the contacts' from the horizon
    on) and the decided ones."""
    rows = {(r["enrollment_id"], r["conversion_id"]): r for r in stored_rows or ()}
    stored = {key: codec.award(r) for key, r in rows.items()}
    computed = {key: a for d in decisions.values() for key, a in d.awards.items()}
    changes = _AwardChanges([], [], [])
    for key in sorted(computed.keys() | stored.keys()):
        before, after = stored.get(key), computed.get(key)
        if after is None:
            assert before is not None
            changes.events.append((domain.ConversionEventType.RETRACTED, before))
            changes.gone.append(tuple(rows[key].values()))
        elif before is None:
            changes.events.append((domain.ConversionEventType.AWARDED, after))
            changes.fresh.append(_award_row(tenant_id, after))
        elif before != after:
            changes.events.append((domain.ConversionEventType.UPDATED, after))
            changes.fresh.append(_award_row(tenant_id, after))
    return changes
