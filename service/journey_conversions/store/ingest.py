"""Writing enrollments, touchpoints and goal events, each in one transaction that also
re-decides every contact whose attribution the write can change.

Batches are set-based: the contacts' locks taken by the statement that checks the batch
against the catalog (or by the insert), one insert, one query for the contacts to re-decide.
Repeats of an event id with the same payload change nothing.
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
from journey_conversions.store.locks import locking_contacts


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


# Each known journey, with its messages (none for an empty journey); and the locks of the
# contacts, in the same round trip. The locks are taken when a row comes back: when none does,
# no journey is known and no touchpoint will be written.
_CATALOG_LOCKING_CONTACTS = (
    "select j.journey_id, m.message_id, min(m.channel) as channel,"
    " array_agg(m.version) as versions, " + locking_contacts("$3") + " as locked"
    " from journeys j left join journey_messages m"
    " on m.tenant_id = j.tenant_id and m.journey_id = j.journey_id"
    " where j.tenant_id = $1 and j.journey_id = any($2::text[])"
    " group by j.journey_id, m.message_id"
)


async def _check_catalog_and_lock(
    conn: asyncpg.Connection, tenant_id: str, items: Sequence[domain.Touchpoint]
) -> dict[str, ServiceError]:
    """Touchpoints must name a defined journey and one of its messages, on its channel: the
    errors of those that do not, by event id. Locks the contacts of the touchpoints (of those
    refused too: a few refusals do not justify a second round trip)."""
    journeys = sorted({t.journey_id for t in items})
    contacts = list({t.contact_id for t in items})  # lock_contacts orders the keys itself
    known: set[str] = set()
    messages: dict[tuple[str, str], _MessageInfo] = {}
    for row in await conn.fetch(_CATALOG_LOCKING_CONTACTS, tenant_id, journeys, contacts):
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


async def record_touchpoints(
    conn: asyncpg.Connection,
    tenant_id: str,
    items: Sequence[domain.Touchpoint],
    horizon: datetime,
) -> list[ItemResult]:
    """Records valid touchpoints; one result per item, in order."""
    unique, results = _dedupe(items, "touchpoint")
    errors = await _check_catalog_and_lock(conn, tenant_id, unique)
    writable = [t for t in unique if t.event_id not in errors]
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
    touch_times = {t.event_id: t.occur_time for t in writable}
    since = decisions.redecision_start(
        horizon, (touch_times[r["event_id"]] for r in rows if r["touches_goal_event"])
    )
    stored = await _stored(
        conn,
        sql.statement("stored_touchpoints"),
        tenant_id,
        [t.event_id for t in writable if t.event_id not in inserted],
        codec.touchpoint,
    )
    by_id = _classify(unique, inserted, stored, errors, "touchpoint")
    # Most touchpoints arrive before any goal event they could affect: no attribution work.
    await decisions.redecide(conn, tenant_id, touched, since)
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
    results, _ = await record_goal_events_deciding(conn, tenant_id, items, horizon)
    return results


async def record_goal_events_deciding(
    conn: asyncpg.Connection,
    tenant_id: str,
    items: Sequence[domain.GoalEvent],
    horizon: datetime,
) -> tuple[list[ItemResult], Mapping[str, domain.Outcome]]:
    """As record_goal_events, with the outcomes this write decided (and stored), by event id:
    those of the events it recorded, at least; not those of duplicates."""
    unique, results = _dedupe(items, "goal event")
    money = [codec.money_columns(e.value) for e in unique]
    inserted = {
        r["event_id"]
        for r in await conn.fetch(
            sql.statement("insert_goal_events"),
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
    new = [e for e in unique if e.event_id in inserted]
    new_amendments = [e for e in new if e.amends_event_id]
    # An amendment changes the value of an earlier event (attribution.amended_values): its
    # contact is re-decided from the horizon, as far back as an amended event may be.
    since = decisions.redecision_start(
        horizon, [horizon] if new_amendments else (e.occur_time for e in new)
    )
    changes = await decisions.redecide(conn, tenant_id, [e.contact_id for e in new], since)
    await amendments.apply_to_final_awards(conn, tenant_id, new_amendments, horizon)
    return [results.get(i) or by_id[e.event_id] for i, e in enumerate(items)], changes.outcomes


async def get_goal_event(
    conn: asyncpg.Connection, tenant_id: str, event_id: str
) -> domain.GoalEvent | None:
    row = await conn.fetchrow(
        f"select {_GOAL_EVENT_COLUMNS} from goal_events where tenant_id = $1 and event_id = $2",
        tenant_id,
        event_id,
    )
    return codec.goal_event(row) if row else None


async def get_touchpoints(
    conn: asyncpg.Connection, tenant_id: str, event_ids: Sequence[str]
) -> dict[str, domain.Touchpoint]:
    """The stored touchpoints among `event_ids`, by event id."""
    rows = await conn.fetch(sql.statement("stored_touchpoints"), tenant_id, list(event_ids))
    return {r["event_id"]: codec.touchpoint(r) for r in rows}


# --- enrollments ----------------------------------------------------------------------------


def enrollment_not_found(enrollment_id: str) -> NotFound:
    return NotFound("ENROLLMENT_NOT_FOUND", f"enrollment {enrollment_id!r} is not known")


async def get_enrollment(
    conn: asyncpg.Connection, tenant_id: str, enrollment_id: str
) -> domain.Enrollment | None:
    return (await get_enrollments(conn, tenant_id, [enrollment_id])).get(enrollment_id)


async def get_enrollments(
    conn: asyncpg.Connection, tenant_id: str, enrollment_ids: Sequence[str]
) -> dict[str, domain.Enrollment]:
    """The stored enrollments among `enrollment_ids`, by id."""
    rows = await conn.fetch(
        "select * from enrollments where tenant_id = $1 and enrollment_id = any($2::text[])",
        tenant_id,
        list(enrollment_ids),
    )
    return {r["enrollment_id"]: codec.enrollment(r) for r in rows}


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


def _version_not_found(journey_id: str, version: int) -> NotFound:
    return NotFound("VERSION_NOT_FOUND", f"journey {journey_id!r} has no version {version}")


async def _check_versions_and_lock(
    conn: asyncpg.Connection, tenant_id: str, items: Sequence[domain.Enrollment]
) -> dict[tuple[str, int], ServiceError]:
    """Entries must name a defined journey version: the error of each (journey, version) that
    is not. Locks the contacts of the entries in the same round trip (of those refused too)."""
    pairs = sorted({(e.journey_id, e.version) for e in items})
    if not pairs:
        return {}
    errors: dict[tuple[str, int], ServiceError] = {}
    for row in await conn.fetch(
        "select k.j, k.v,"
        " exists (select 1 from journeys where tenant_id = $1 and journey_id = k.j) as journey,"
        " exists (select 1 from journey_versions where tenant_id = $1 and journey_id = k.j"
        " and version = k.v) as version, " + locking_contacts("$4") + " as locked"
        " from unnest($2::text[], $3::int[]) as k(j, v)",
        tenant_id,
        [j for j, _ in pairs],
        [v for _, v in pairs],
        list({e.contact_id for e in items}),
    ):
        if not row["journey"]:
            errors[(row["j"], row["v"])] = catalog.journey_not_found(row["j"])
        elif not row["version"]:
            errors[(row["j"], row["v"])] = _version_not_found(row["j"], row["v"])
    return errors


def _as_entered(stored: domain.Enrollment) -> domain.Enrollment:
    """What EnterJourney sent for a stored enrollment: its exit is not part of the entry."""
    return replace(stored, exit_time=None, exit_reason=domain.ExitReason.UNSPECIFIED)


async def enter_enrollments(
    conn: asyncpg.Connection,
    tenant_id: str,
    items: Sequence[domain.Enrollment],
    horizon: datetime,
) -> list[ItemResult]:
    """Records entries (EnterJourney is a batch of one); one result per item, in order.

    The items are judged in order, as if entered one by one: an unknown journey or version is
    NOT_FOUND; an enrollment_id already entered (before, or by an earlier item) is a duplicate
    when the entry is the same, and an idempotency conflict otherwise. A handful of statements
    serve the whole batch: the version check with the contacts' locks, one insert, the report facts
    of the new enrollments, and the re-decision of the contacts whose attribution they can
    change.
    """
    errors = await _check_versions_and_lock(conn, tenant_id, items)
    # The first entry of each enrollment_id among the entries of known versions is the one
    # that can be new; later ones repeat it, or conflict with it.
    firsts: dict[str, int] = {}
    for index, e in enumerate(items):
        if (e.journey_id, e.version) not in errors:
            firsts.setdefault(e.enrollment_id, index)
    candidates = [items[i] for i in firsts.values()]
    inserted = {
        r["enrollment_id"]
        for r in await conn.fetch(
            "insert into enrollments (tenant_id, enrollment_id, contact_id, journey_id, version,"
            " enter_time, holdout) select $1, * from unnest($2::text[], $3::text[], $4::text[],"
            " $5::int[], $6::timestamptz[], $7::bool[])"
            " on conflict (tenant_id, enrollment_id) do nothing returning enrollment_id",
            tenant_id,
            [e.enrollment_id for e in candidates],
            [e.contact_id for e in candidates],
            [e.journey_id for e in candidates],
            [e.version for e in candidates],
            [e.enter_time for e in candidates],
            [e.holdout for e in candidates],
        )
    }
    entered = {e.enrollment_id: e for e in candidates if e.enrollment_id in inserted}
    repeated = [e.enrollment_id for e in candidates if e.enrollment_id not in inserted]
    for row in await _enrollments(conn, tenant_id, repeated):
        entered[row.enrollment_id] = _as_entered(row)
    results: list[ItemResult] = []
    for index, e in enumerate(items):
        error = errors.get((e.journey_id, e.version))
        if error is not None:
            results.append(ItemResult(ItemStatus.REJECTED, error))
        elif firsts[e.enrollment_id] == index and e.enrollment_id in inserted:
            results.append(ACCEPTED)
        elif entered[e.enrollment_id] == e:
            results.append(DUPLICATE)
        else:
            results.append(
                ItemResult(ItemStatus.REJECTED, idempotency_conflict("enrollment", e.enrollment_id))
            )
    new = [e for e in candidates if e.enrollment_id in inserted]
    if new:
        # Touchpoints may have arrived before the entries that they belong to.
        await facts.recompute(conn, tenant_id, [e.enrollment_id for e in new], new=True)
        await _redecide_participation(
            conn, tenant_id, [(e.contact_id, e.enter_time) for e in new], horizon
        )
    return results


async def _enrollments(
    conn: asyncpg.Connection, tenant_id: str, enrollment_ids: Sequence[str]
) -> list[domain.Enrollment]:
    if not enrollment_ids:
        return []
    rows = await conn.fetch(
        "select * from enrollments where tenant_id = $1 and enrollment_id = any($2::text[])",
        tenant_id,
        list(enrollment_ids),
    )
    return [codec.enrollment(r) for r in rows]


async def _redecide_participation(
    conn: asyncpg.Connection,
    tenant_id: str,
    changes: Sequence[tuple[str, datetime]],
    horizon: datetime,
) -> None:
    """Re-decides the contacts whose entries or exits (contact, time) can change a decision:
    only goal events and step marks from then on depend on participation."""
    contacts = await decisions.contacts_with_events_since(conn, tenant_id, changes)
    since = decisions.redecision_start(horizon, (when for _, when in changes))
    await decisions.redecide(conn, tenant_id, contacts, since)


def enrollment_already_exited(enrollment: domain.Enrollment) -> AlreadyExists:
    assert enrollment.exit_time is not None
    return AlreadyExists(
        "ENROLLMENT_ALREADY_EXITED",
        f"enrollment {enrollment.enrollment_id!r} already exited at"
        f" {enrollment.exit_time.isoformat()}",
    )


async def exit_enrollments(
    conn: asyncpg.Connection,
    tenant_id: str,
    items: Sequence[domain.EnrollmentExit],
    horizon: datetime,
) -> list[ItemResult]:
    """Records exits (ExitJourney is a batch of one); one result per item, in order.

    The items are judged in order, as if sent one by one, against the enrollments as stored
    and as the earlier items left them: an unknown enrollment is NOT_FOUND; an ended one is a
    duplicate for the same exit and ALREADY_EXISTS for another; an exit before the entry is
    FAILED_PRECONDITION. The enrollments are read again under their contacts' locks, then
    ended by one update, their report facts recomputed, and their contacts re-decided when
    the exits can change a decision.
    """
    ids = sorted({x.enrollment_id for x in items})
    await conn.execute(
        "select "
        + locking_contacts(
            "array(select contact_id from enrollments"
            " where tenant_id = $1 and enrollment_id = any($2::text[]))"
        ),
        tenant_id,
        ids,
    )
    current = {e.enrollment_id: e for e in await _enrollments(conn, tenant_id, ids)}
    ended: dict[str, domain.Enrollment] = {}
    results: list[ItemResult] = []
    for x in items:
        found = current.get(x.enrollment_id)
        if found is None:
            results.append(ItemResult(ItemStatus.REJECTED, enrollment_not_found(x.enrollment_id)))
        elif found.exit_time is not None:
            if (found.exit_time, found.exit_reason) == (x.exit_time, x.exit_reason):
                results.append(DUPLICATE)
            else:
                results.append(ItemResult(ItemStatus.REJECTED, enrollment_already_exited(found)))
        elif x.exit_time < found.enter_time:
            results.append(
                ItemResult(
                    ItemStatus.REJECTED,
                    FailedPrecondition(
                        "EXIT_BEFORE_ENTRY",
                        "exit_time is before the enrollment's enter_time"
                        f" {found.enter_time.isoformat()}",
                    ),
                )
            )
        else:
            current[x.enrollment_id] = ended[x.enrollment_id] = replace(
                found, exit_time=x.exit_time, exit_reason=x.exit_reason
            )
            results.append(ACCEPTED)
    if ended:
        exits = list(ended.values())
        await conn.execute(
            "update enrollments e set exit_time = x.t, exit_reason = x.r"
            " from unnest($2::text[], $3::timestamptz[], $4::smallint[]) as x(id, t, r)"
            " where e.tenant_id = $1 and e.enrollment_id = x.id",
            tenant_id,
            [e.enrollment_id for e in exits],
            [e.exit_time for e in exits],
            [int(e.exit_reason) for e in exits],
        )
        # The exits can end the periods that the first touches lay in.
        await facts.recompute(conn, tenant_id, sorted(ended))
        await _redecide_participation(
            conn,
            tenant_id,
            [(e.contact_id, e.exit_time) for e in exits if e.exit_time is not None],
            horizon,
        )
    return results
