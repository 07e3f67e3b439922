"""Writing enrollments, touchpoints and goal events, each in one transaction that also
re-decides every contact whose attribution the write can change.

Batches are set-based: one lock statement, one insert, one query for the contacts to
re-decide. Repeats of an event id with the same payload change nothing.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

import asyncpg

from journey_conversions import domain
from journey_conversions.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    Violation,
    idempotency_conflict,
)
from journey_conversions.store import amendments, catalog, codec, decisions, facts, sql
from journey_conversions.store.locks import lock_contacts


class ItemStatus(enum.IntEnum):
    ACCEPTED = 1
    DUPLICATE = 2
    REJECTED = 3


@dataclass(frozen=True, slots=True)
class ItemResult:
    status: ItemStatus
    error: ServiceError | None = None


ACCEPTED = ItemResult(ItemStatus.ACCEPTED)
DUPLICATE = ItemResult(ItemStatus.DUPLICATE)
_Event = TypeVar("_Event", domain.Touchpoint, domain.GoalEvent)


def _dedupe(items: Sequence[_Event], kind: str) -> tuple[list[_Event], dict[int, ItemResult]]:
    """Keeps the first item of each event id; later ones are duplicates or conflicts."""
    first: dict[str, _Event] = {}
    unique: list[_Event] = []
    results: dict[int, ItemResult] = {}
    for index, item in enumerate(items):
        seen = first.get(item.event_id)
        if seen is None:
            first[item.event_id] = item
            unique.append(item)
        elif seen == item:
            results[index] = DUPLICATE
        else:
            results[index] = ItemResult(
                ItemStatus.REJECTED, idempotency_conflict(kind, item.event_id)
            )
    return unique, results


async def _stored(
    conn: asyncpg.Connection,
    query: str,
    tenant_id: str,
    event_ids: list[str],
    decode: Callable[[asyncpg.Record], _Event],
) -> dict[str, _Event]:
    """The stored events of the ids that were not new (repeats, or reuses of an id)."""
    if not event_ids:
        return {}
    return {r["event_id"]: decode(r) for r in await conn.fetch(query, tenant_id, event_ids)}


def _classify(
    items: Sequence[_Event],
    inserted: set[str],
    stored: Mapping[str, _Event],
    errors: Mapping[str, ServiceError],
    kind: str,
) -> dict[str, ItemResult]:
    """Accepted when new; a duplicate when the stored event is the same; otherwise rejected."""
    results: dict[str, ItemResult] = {}
    for item in items:
        if item.event_id in errors:
            results[item.event_id] = ItemResult(ItemStatus.REJECTED, errors[item.event_id])
        elif item.event_id in inserted:
            results[item.event_id] = ACCEPTED
        elif stored.get(item.event_id) == item:
            results[item.event_id] = DUPLICATE
        else:
            results[item.event_id] = ItemResult(
                ItemStatus.REJECTED, idempotency_conflict(kind, item.event_id)
            )
    return results


# --- touchpoints ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MessageInfo:
    channel: domain.Channel
    versions: frozenset[int]


async def _check_catalog(
    conn: asyncpg.Connection, tenant_id: str, items: Sequence[domain.Touchpoint]
) -> dict[str, ServiceError]:
    """Touchpoints must name a defined journey and one of its messages, on its channel."""
    journeys = sorted({t.journey_id for t in items})
    known: set[str] = set()
    messages: dict[tuple[str, str], _MessageInfo] = {}
    # One round trip: each known journey, with its messages (none for an empty journey).
    for row in await conn.fetch(
        "select j.journey_id, m.message_id, min(m.channel) as channel,"
        " array_agg(m.version) as versions"
        " from journeys j left join journey_messages m"
        " on m.tenant_id = j.tenant_id and m.journey_id = j.journey_id"
        " where j.tenant_id = $1 and j.journey_id = any($2::text[])"
        " group by j.journey_id, m.message_id",
        tenant_id,
        journeys,
    ):
        known.add(row["journey_id"])
        if row["message_id"] is not None:
            messages[(row["journey_id"], row["message_id"])] = _MessageInfo(
                domain.Channel(row["channel"]), frozenset(row["versions"])
            )
    errors: dict[str, ServiceError] = {}
    for t in items:
        info = messages.get((t.journey_id, t.message_id))
        if t.journey_id not in known:
            errors[t.event_id] = catalog.journey_not_found(t.journey_id)
        elif info is None:
            errors[t.event_id] = NotFound(
                "MESSAGE_NOT_FOUND",
                f"message {t.message_id!r} is not in journey {t.journey_id!r}",
            )
        elif t.version and t.version not in info.versions:
            errors[t.event_id] = NotFound(
                "MESSAGE_NOT_IN_VERSION",
                f"message {t.message_id!r} is not in version {t.version} of {t.journey_id!r}",
            )
        elif info.channel != t.channel:
            errors[t.event_id] = InvalidArgument(
                [Violation("channel", f"message {t.message_id!r} is a {info.channel.name} message")]
            )
    return errors


_TOUCHPOINT_COLUMNS = (
    "event_id, contact_id, journey_id, version, message_id, channel, action, occur_time,"
    " machine_generated"
)


async def record_touchpoints(
    conn: asyncpg.Connection,
    tenant_id: str,
    items: Sequence[domain.Touchpoint],
    horizon: datetime,
) -> list[ItemResult]:
    """Records valid touchpoints; one result per item, in order."""
    unique, results = _dedupe(items, "touchpoint")
    errors = await _check_catalog(conn, tenant_id, unique)
    writable = [t for t in unique if t.event_id not in errors]
    await lock_contacts(conn, tenant_id, (t.contact_id for t in writable))
    rows = await conn.fetch(
        sql.statement("insert_touchpoints"),
        tenant_id,
        [t.event_id for t in writable],
        [t.contact_id for t in writable],
        [t.journey_id for t in writable],
        [t.version for t in writable],
        [t.message_id for t in writable],
        [int(t.channel) for t in writable],
        [int(t.action) for t in writable],
        [t.occur_time for t in writable],
        [t.machine_generated for t in writable],
    )
    inserted = {r["event_id"] for r in rows}
    touched = {r["contact_id"] for r in rows if r["touches_goal_event"]}
    stored = await _stored(
        conn,
        f"select {_TOUCHPOINT_COLUMNS} from touchpoints"
        " where tenant_id = $1 and event_id = any($2::text[])",
        tenant_id,
        [t.event_id for t in writable if t.event_id not in inserted],
        codec.touchpoint,
    )
    by_id = _classify(unique, inserted, stored, errors, "touchpoint")
    # Most touchpoints arrive before any goal event they could affect: no attribution work.
    await decisions.redecide(conn, tenant_id, touched, horizon)
    return [results.get(i) or by_id[t.event_id] for i, t in enumerate(items)]


# --- goal events ----------------------------------------------------------------------------

_GOAL_EVENT_COLUMNS = (
    "event_id, contact_id, event_type, occur_time, attribute_name, attribute_value, list_id,"
    " message_id, url, form_id, product_ids, value_currency, value_micros, amends_event_id"
)


async def record_goal_events(
    conn: asyncpg.Connection,
    tenant_id: str,
    items: Sequence[domain.GoalEvent],
    horizon: datetime,
) -> list[ItemResult]:
    """Records goal events and re-decides their contacts; one result per item, in order."""
    unique, results = _dedupe(items, "goal event")
    await lock_contacts(conn, tenant_id, (e.contact_id for e in unique))
    money = [codec.money_columns(e.value) for e in unique]
    inserted = {
        r["event_id"]
        for r in await conn.fetch(
            f"insert into goal_events (tenant_id, {_GOAL_EVENT_COLUMNS})"
            " select $1, e, c, t, o, an, av, l, m, u, f,"
            " coalesce(string_to_array(p, chr(31)), '{}'::text[]), vc, vm, am"
            " from unnest($2::text[], $3::text[], $4::smallint[], $5::timestamptz[],"
            " $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],"
            " $12::text[], $13::text[], $14::bigint[], $15::text[])"
            " as x(e, c, t, o, an, av, l, m, u, f, p, vc, vm, am)"
            " on conflict (tenant_id, event_id) do nothing returning event_id",
            tenant_id,
            [e.event_id for e in unique],
            [e.contact_id for e in unique],
            [int(e.event_type) for e in unique],
            [e.occur_time for e in unique],
            [e.attribute_name for e in unique],
            [e.attribute_value for e in unique],
            [e.list_id for e in unique],
            [e.message_id for e in unique],
            [e.url for e in unique],
            [e.form_id for e in unique],
            # text[][] must be rectangular, so product lists travel joined by a unit separator.
            [chr(31).join(sorted(e.product_ids)) or None for e in unique],
            [currency for currency, _ in money],
            [micros for _, micros in money],
            [e.amends_event_id for e in unique],
        )
    }
    stored = await _stored(
        conn,
        f"select {_GOAL_EVENT_COLUMNS} from goal_events"
        " where tenant_id = $1 and event_id = any($2::text[])",
        tenant_id,
        [e.event_id for e in unique if e.event_id not in inserted],
        codec.goal_event,
    )
    by_id = _classify(unique, inserted, stored, {}, "goal event")
    new_contacts = [e.contact_id for e in unique if e.event_id in inserted]
    await decisions.redecide(conn, tenant_id, new_contacts, horizon)
    new_amendments = [e for e in unique if e.event_id in inserted and e.amends_event_id]
    await amendments.apply_to_final_awards(conn, tenant_id, new_amendments, horizon)
    return [results.get(i) or by_id[e.event_id] for i, e in enumerate(items)]


async def get_goal_event(
    conn: asyncpg.Connection, tenant_id: str, event_id: str
) -> domain.GoalEvent | None:
    row = await conn.fetchrow(
        f"select {_GOAL_EVENT_COLUMNS} from goal_events where tenant_id = $1 and event_id = $2",
        tenant_id,
        event_id,
    )
    return codec.goal_event(row) if row else None


async def get_touchpoint(
    conn: asyncpg.Connection, tenant_id: str, event_id: str
) -> domain.Touchpoint | None:
    row = await conn.fetchrow(
        f"select {_TOUCHPOINT_COLUMNS} from touchpoints where tenant_id = $1 and event_id = $2",
        tenant_id,
        event_id,
    )
    return codec.touchpoint(row) if row else None


# --- enrollments ----------------------------------------------------------------------------


def enrollment_not_found(enrollment_id: str) -> NotFound:
    return NotFound("ENROLLMENT_NOT_FOUND", f"enrollment {enrollment_id!r} is not known")


async def get_enrollment(
    conn: asyncpg.Connection, tenant_id: str, enrollment_id: str
) -> domain.Enrollment | None:
    row = await conn.fetchrow(
        "select * from enrollments where tenant_id = $1 and enrollment_id = $2",
        tenant_id,
        enrollment_id,
    )
    return codec.enrollment(row) if row else None


async def list_enrollments(
    conn: asyncpg.Connection,
    tenant_id: str,
    contact_id: str,
    journey_id: str,
    active_at: datetime | None,
    after: str,
    limit: int,
) -> list[domain.Enrollment]:
    """A contact's enrollments; with `active_at`, those active then (see Enrollment.active_at)."""
    rows = await conn.fetch(
        "select * from enrollments where tenant_id = $1 and contact_id = $2"
        " and ($3 = '' or journey_id = $3)"
        " and ($4::timestamptz is null or (enter_time <= $4"
        " and (exit_time is null or exit_time >= $4)))"
        " and enrollment_id > $5 order by enrollment_id limit $6",
        tenant_id,
        contact_id,
        journey_id,
        active_at,
        after,
        limit,
    )
    return [codec.enrollment(r) for r in rows]


async def enter(
    conn: asyncpg.Connection, tenant_id: str, new: domain.Enrollment, horizon: datetime
) -> domain.Enrollment:
    exists = await conn.fetchval(
        "select true from journey_versions where tenant_id = $1 and journey_id = $2"
        " and version = $3",
        tenant_id,
        new.journey_id,
        new.version,
    )
    if not exists:
        if await catalog.load_journey(conn, tenant_id, new.journey_id) is None:
            raise catalog.journey_not_found(new.journey_id)
        raise NotFound(
            "VERSION_NOT_FOUND", f"journey {new.journey_id!r} has no version {new.version}"
        )
    await lock_contacts(conn, tenant_id, [new.contact_id])
    inserted = await conn.fetchval(
        "insert into enrollments (tenant_id, enrollment_id, contact_id, journey_id, version,"
        " enter_time, holdout) values ($1, $2, $3, $4, $5, $6, $7)"
        " on conflict (tenant_id, enrollment_id) do nothing returning true",
        tenant_id,
        new.enrollment_id,
        new.contact_id,
        new.journey_id,
        new.version,
        new.enter_time,
        new.holdout,
    )
    stored = await get_enrollment(conn, tenant_id, new.enrollment_id)
    assert stored is not None
    if not inserted:
        first = replace(stored, exit_time=None, exit_reason=domain.ExitReason.UNSPECIFIED)
        if first != new:
            raise idempotency_conflict("enrollment", new.enrollment_id)
        return stored
    # Touchpoints may have arrived before the entry that they belong to.
    await facts.recompute(conn, tenant_id, [new.enrollment_id], new=True)
    if await decisions.has_events_since(conn, tenant_id, new.contact_id, new.enter_time):
        await decisions.redecide(conn, tenant_id, [new.contact_id], horizon)
    return stored


async def exit_enrollment(
    conn: asyncpg.Connection,
    tenant_id: str,
    enrollment_id: str,
    exit_time: datetime,
    reason: domain.ExitReason,
    horizon: datetime,
) -> domain.Enrollment:
    found = await get_enrollment(conn, tenant_id, enrollment_id)
    if found is None:
        raise enrollment_not_found(enrollment_id)
    await lock_contacts(conn, tenant_id, [found.contact_id])
    current = await get_enrollment(conn, tenant_id, enrollment_id)
    assert current is not None
    if current.exit_time is not None:
        if current.exit_time == exit_time and current.exit_reason == reason:
            return current
        raise AlreadyExists(
            "ENROLLMENT_ALREADY_EXITED",
            f"enrollment {enrollment_id!r} already exited at {current.exit_time.isoformat()}",
        )
    if exit_time < current.enter_time:
        raise FailedPrecondition(
            "EXIT_BEFORE_ENTRY",
            f"exit_time is before the enrollment's enter_time {current.enter_time.isoformat()}",
        )
    await conn.execute(
        "update enrollments set exit_time = $3, exit_reason = $4"
        " where tenant_id = $1 and enrollment_id = $2",
        tenant_id,
        enrollment_id,
        exit_time,
        int(reason),
    )
    # The exit can end the period that the first touches lay in.
    await facts.recompute(conn, tenant_id, [enrollment_id])
    if await decisions.has_events_since(conn, tenant_id, current.contact_id, exit_time):
        await decisions.redecide(conn, tenant_id, [current.contact_id], horizon)
    stored = await get_enrollment(conn, tenant_id, enrollment_id)
    assert stored is not None
    return stored
