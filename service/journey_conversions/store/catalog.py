"""Journeys, their versions and goal history, and named conversions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from journey_conversions import domain
from journey_conversions.errors import FailedPrecondition, InvalidArgument, NotFound, Violation
from journey_conversions.store import codec
from journey_conversions.store.locks import lock_journey_definition


def journey_not_found(journey_id: str) -> NotFound:
    return NotFound("JOURNEY_NOT_FOUND", f"journey {journey_id!r} is not defined")


async def load_journey(
    conn: asyncpg.Connection, tenant_id: str, journey_id: str
) -> domain.Journey | None:
    journeys = await load_journeys(conn, tenant_id, [journey_id])
    return journeys.get(journey_id)


async def load_journeys(
    conn: asyncpg.Connection, tenant_id: str, journey_ids: Sequence[str]
) -> dict[str, domain.Journey]:
    rows = await conn.fetch(
        "select * from journeys where tenant_id = $1 and journey_id = any($2::text[])",
        tenant_id,
        list(journey_ids),
    )
    if not rows:
        return {}
    found = [r["journey_id"] for r in rows]
    goals = await _goal_histories(conn, tenant_id, found)
    messages: dict[tuple[str, int], list[domain.JourneyMessage]] = defaultdict(list)
    versions: dict[str, list[int]] = defaultdict(list)
    for row in await conn.fetch(
        "select journey_id, version from journey_versions"
        " where tenant_id = $1 and journey_id = any($2::text[]) order by journey_id, version",
        tenant_id,
        found,
    ):
        versions[row["journey_id"]].append(row["version"])
    for row in await conn.fetch(
        "select * from journey_messages where tenant_id = $1 and journey_id = any($2::text[])"
        " order by journey_id, version, message_id",
        tenant_id,
        found,
    ):
        messages[(row["journey_id"], row["version"])].append(
            domain.JourneyMessage(
                row["message_id"], domain.Channel(row["channel"]), row["step_id"], row["path"]
            )
        )
    return {
        row["journey_id"]: domain.Journey(
            journey_id=row["journey_id"],
            display_name=row["display_name"],
            purpose=domain.Purpose(row["purpose"]),
            window=timedelta(seconds=row["window_seconds"]),
            exclude_machine_opens=row["exclude_machine_opens"],
            versions=tuple(
                domain.JourneyVersion(v, tuple(messages[(row["journey_id"], v)]))
                for v in versions[row["journey_id"]]
            ),
            goal_history=goals.get(row["journey_id"], ()),
            create_time=row["create_time"],
            update_time=row["update_time"],
        )
        for row in rows
    }


async def _goal_histories(
    conn: asyncpg.Connection, tenant_id: str, journey_ids: Sequence[str]
) -> dict[str, tuple[domain.CriterionChange, ...]]:
    histories: dict[str, list[domain.CriterionChange]] = defaultdict(list)
    for row in await conn.fetch(
        "select journey_id, effective_time, criterion from journey_goals"
        " where tenant_id = $1 and journey_id = any($2::text[]) order by journey_id, seq",
        tenant_id,
        list(journey_ids),
    ):
        histories[row["journey_id"]].append(
            domain.CriterionChange(
                row["effective_time"], codec.criterion_from_json(row["criterion"])
            )
        )
    return {k: tuple(v) for k, v in histories.items()}


async def lock_journey(conn: asyncpg.Connection, tenant_id: str, journey_id: str) -> bool:
    """Serializes definitions of the journey and its conversions until commit; False when the
    journey is not defined."""
    await lock_journey_definition(conn, tenant_id, journey_id)
    found = await conn.fetchval(
        "select true from journeys where tenant_id = $1 and journey_id = $2",
        tenant_id,
        journey_id,
    )
    return bool(found)


async def list_journeys(
    conn: asyncpg.Connection, tenant_id: str, after: str, limit: int
) -> list[domain.Journey]:
    ids = [
        r["journey_id"]
        for r in await conn.fetch(
            "select journey_id from journeys where tenant_id = $1 and journey_id > $2"
            " order by journey_id limit $3",
            tenant_id,
            after,
            limit,
        )
    ]
    journeys = await load_journeys(conn, tenant_id, ids)
    return [journeys[i] for i in ids]


@dataclass(frozen=True, slots=True)
class JourneyChange:
    """What a definition changed that attribution must re-decide from `since` on."""

    journey: domain.Journey
    redecide_since: datetime | None  # None: nothing attribution-relevant changed


async def save_journey(
    conn: asyncpg.Connection,
    tenant_id: str,
    new: domain.Journey,
    goal_effective_time: datetime,
    horizon: datetime,
) -> JourneyChange:
    """Creates or changes a journey inside the caller's transaction.

    Journey-level fields are replaced; versions are added (a defined version must come back
    unchanged); a changed goal is appended to the history at `goal_effective_time`.
    """
    await lock_journey_definition(conn, tenant_id, new.journey_id)
    current = await load_journey(conn, tenant_id, new.journey_id)
    _check_versions(current, new)
    window_seconds = int(new.window.total_seconds())
    if current is None:
        await conn.execute(
            "insert into journeys (tenant_id, journey_id, display_name, purpose, window_seconds,"
            " exclude_machine_opens) values ($1, $2, $3, $4, $5, $6)",
            tenant_id,
            new.journey_id,
            new.display_name,
            int(new.purpose),
            window_seconds,
            new.exclude_machine_opens,
        )
    else:
        await conn.execute(
            "update journeys set display_name = $3, purpose = $4, window_seconds = $5,"
            " exclude_machine_opens = $6, update_time = now()"
            " where tenant_id = $1 and journey_id = $2",
            tenant_id,
            new.journey_id,
            new.display_name,
            int(new.purpose),
            window_seconds,
            new.exclude_machine_opens,
        )
    known = {v.version for v in current.versions} if current else set()
    for version in new.versions:
        if version.version in known:
            continue
        await conn.execute(
            "insert into journey_versions (tenant_id, journey_id, version) values ($1, $2, $3)",
            tenant_id,
            new.journey_id,
            version.version,
        )
        await conn.executemany(
            "insert into journey_messages (tenant_id, journey_id, version, message_id, channel,"
            " step_id, path) values ($1, $2, $3, $4, $5, $6, $7)",
            [
                (
                    tenant_id,
                    new.journey_id,
                    version.version,
                    m.message_id,
                    int(m.channel),
                    m.step_id,
                    m.path,
                )
                for m in version.messages
            ],
        )
    goal_since = await _save_goal(
        conn, tenant_id, new.journey_id, current, new.goal, goal_effective_time, horizon
    )
    settings_changed = current is not None and (
        current.window != new.window or current.exclude_machine_opens != new.exclude_machine_opens
    )
    # The current window applies to every goal event not yet final.
    redecide_since = horizon if settings_changed else goal_since
    saved = await load_journey(conn, tenant_id, new.journey_id)
    assert saved is not None
    return JourneyChange(saved, redecide_since)


def _check_versions(current: domain.Journey | None, new: domain.Journey) -> None:
    existing = {v.version: v for v in current.versions} if current else {}
    for version in new.versions:
        before = existing.get(version.version)
        if before is not None and set(before.messages) != set(version.messages):
            raise FailedPrecondition(
                "VERSION_IMMUTABLE",
                f"version {version.version} of journey {new.journey_id!r} is already defined"
                " with other messages; define a new version instead",
            )
    channels: dict[str, domain.Channel] = current.messages() if current else {}
    violations = []
    for v_index, version in enumerate(new.versions):
        for m_index, message in enumerate(version.messages):
            seen = channels.setdefault(message.message_id, message.channel)
            if seen != message.channel:
                violations.append(
                    Violation(
                        f"journey.versions[{v_index}].messages[{m_index}].channel",
                        f"message {message.message_id!r} is a {seen.name} message elsewhere"
                        " in the journey",
                    )
                )
    if violations:
        raise InvalidArgument(violations)


async def _save_goal(
    conn: asyncpg.Connection,
    tenant_id: str,
    journey_id: str,
    current: domain.Journey | None,
    goal: domain.Criterion | None,
    effective_time: datetime,
    horizon: datetime,
) -> datetime | None:
    """Appends a goal change when the goal differs; returns the time from which goal events
    must be re-decided (None when the goal did not change)."""
    history = current.goal_history if current else ()
    if history and history[-1].criterion == goal:
        return None
    if not history and goal is None:
        return None
    if not history:
        effective: datetime | None = None  # the first goal is in force from the start
    else:
        last = history[-1].effective_time
        if last is not None and effective_time < last:
            raise FailedPrecondition(
                "GOAL_CHANGE_OUT_OF_ORDER",
                "goal_effective_time is before the journey's last goal change",
            )
        effective = effective_time
    await conn.execute(
        "insert into journey_goals (tenant_id, journey_id, seq, effective_time, criterion)"
        " values ($1, $2, $3, $4, $5)",
        tenant_id,
        journey_id,
        len(history) + 1,
        effective,
        codec.criterion_to_json(goal),
    )
    # The first goal is in force from the start: every goal event not yet final may change.
    return effective if effective is not None else horizon


# --- named conversions ----------------------------------------------------------------------


def _conversion(
    row: asyncpg.Record, trigger: domain.Criterion | None
) -> domain.ConversionDefinition:
    return domain.ConversionDefinition(
        conversion_id=row["conversion_id"],
        journey_id=row["journey_id"],
        name=row["name"],
        value=codec.money(row["value_currency"], row["value_micros"]),
        trigger=trigger,
        award_on_goal=row["award_on_goal"],
        revision=row["revision"],
        create_time=row["create_time"],
        update_time=row["update_time"],
    )


async def _current_triggers(
    conn: asyncpg.Connection, tenant_id: str, journey_id: str
) -> dict[str, domain.Criterion | None]:
    rows = await conn.fetch(
        "select distinct on (conversion_id) conversion_id, criterion from conversion_triggers"
        " where tenant_id = $1 and journey_id = $2 order by conversion_id, seq desc",
        tenant_id,
        journey_id,
    )
    return {r["conversion_id"]: codec.criterion_from_json(r["criterion"]) for r in rows}


async def list_conversions(
    conn: asyncpg.Connection, tenant_id: str, journey_id: str, after: str = "", limit: int = 1000
) -> list[domain.ConversionDefinition]:
    rows = await conn.fetch(
        "select * from conversions where tenant_id = $1 and journey_id = $2"
        " and conversion_id > $3 order by conversion_id limit $4",
        tenant_id,
        journey_id,
        after,
        limit,
    )
    triggers = await _current_triggers(conn, tenant_id, journey_id)
    return [_conversion(r, triggers.get(r["conversion_id"])) for r in rows]


async def save_conversion(
    conn: asyncpg.Connection,
    tenant_id: str,
    new: domain.ConversionDefinition,
    name_key: str,
    effective_time: datetime,
) -> tuple[domain.ConversionDefinition, bool]:
    """Creates or updates a named conversion (the caller has checked name uniqueness); says
    whether its trigger changed. The first trigger is in force from the start."""
    currency, micros = codec.money_columns(new.value)
    row = await conn.fetchrow(
        "insert into conversions as c (tenant_id, journey_id, conversion_id, name, name_key,"
        " value_currency, value_micros, award_on_goal) values ($1, $2, $3, $4, $5, $6, $7, $8)"
        " on conflict (tenant_id, journey_id, conversion_id) do update set name = $4,"
        " name_key = $5, value_currency = $6, value_micros = $7, award_on_goal = $8,"
        " revision = c.revision + 1, update_time = now()"
        " returning *",
        tenant_id,
        new.journey_id,
        new.conversion_id,
        new.name,
        name_key,
        currency,
        micros,
        new.award_on_goal,
    )
    assert row is not None
    triggers = await conn.fetch(
        "select seq, criterion from conversion_triggers where tenant_id = $1 and journey_id = $2"
        " and conversion_id = $3 order by seq",
        tenant_id,
        new.journey_id,
        new.conversion_id,
    )
    current = codec.criterion_from_json(triggers[-1]["criterion"]) if triggers else None
    trigger_changed = current != new.trigger
    if trigger_changed:
        await conn.execute(
            "insert into conversion_triggers (tenant_id, journey_id, conversion_id, seq,"
            " effective_time, criterion) values ($1, $2, $3, $4, $5, $6)",
            tenant_id,
            new.journey_id,
            new.conversion_id,
            len(triggers) + 1,
            None if not triggers else effective_time,
            codec.criterion_to_json(new.trigger),
        )
    saved = _conversion(row, new.trigger)
    await conn.execute(
        "insert into conversion_revisions (tenant_id, journey_id, conversion_id, revision,"
        " definition) values ($1, $2, $3, $4, $5)",
        tenant_id,
        new.journey_id,
        new.conversion_id,
        saved.revision,
        {
            "name": saved.name,
            "value_currency": currency,
            "value_micros": micros,
            "award_on_goal": saved.award_on_goal,
            "trigger": codec.criterion_to_json(saved.trigger),
        },
    )
    return saved, trigger_changed
