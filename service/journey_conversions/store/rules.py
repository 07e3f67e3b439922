"""What attribution needs of each journey (domain.JourneyRules), read for every re-decision and
kept between them: a server holds the rules it read with their revision (migration 0008), and
reads a journey's rules again only when its revision moved, on this replica or another.

The revision is read in the same statement as the rules would be, so a transaction uses the
rules its own snapshot holds, as when they were read every time. Revisions are transaction ids,
unique across the databases of one Postgres cluster (a process talks to one cluster); rules a
transaction changed itself are never kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from journey_conversions import domain
from journey_conversions.store import codec, sql

# (tenant, journey) -> (revision, rules). Catalogs are small (journeys, not contacts); past
# this many the whole map starts over rather than keep a journey no call has read for long.
MAX_HELD = 20_000
_held: dict[tuple[str, str], tuple[int, domain.JourneyRules]] = {}
_NONE = -1  # no revision held: the rules are read


async def load_rules(
    conn: asyncpg.Connection, tenant_id: str, journey_ids: Sequence[str]
) -> dict[str, domain.JourneyRules]:
    """Each journey's rules, by id (unknown journeys left out): goal history, window,
    conversions' values and triggers. One statement, which builds only the rules of journeys
    whose revision moved since this server held them."""
    ids = sorted(set(journey_ids))
    if not ids:
        return {}
    held = {j: _held.get((tenant_id, j)) for j in ids}
    rows = await conn.fetch(
        sql.statement("journey_rules"),
        tenant_id,
        ids,
        [_NONE if h is None else h[0] for h in held.values()],
    )
    found: dict[str, domain.JourneyRules] = {}
    for row in rows:
        journey_id = row["journey_id"]
        kept = held[journey_id]
        if row["held"] and kept is not None:
            found[journey_id] = kept[1]
            continue
        rules = _rules(row)
        if not row["mine"]:  # committed rules: any later transaction may see them
            if len(_held) >= MAX_HELD:
                _held.clear()
            _held[(tenant_id, journey_id)] = (row["rules_revision"], rules)
        found[journey_id] = rules
    return found


async def rules_at(
    conn: asyncpg.Connection, tenant_id: str, revisions: Sequence[tuple[str, int | None, bool]]
) -> dict[str, domain.JourneyRules]:
    """The rules of journeys whose revisions the caller read in a statement of its own: (journey,
    revision, whether this transaction changed them). When this server holds every one at its
    revision, no statement at all; otherwise load_rules."""
    found: dict[str, domain.JourneyRules] = {}
    for journey_id, revision, mine in revisions:
        kept = _held.get((tenant_id, journey_id))
        if kept is None or mine or kept[0] != revision:
            return await load_rules(conn, tenant_id, [j for j, _, _ in revisions])
        found[journey_id] = kept[1]
    return found


def _rules(row: asyncpg.Record) -> domain.JourneyRules:
    return domain.JourneyRules(
        journey_id=row["journey_id"],
        goal_history=_changes(row["goals"]),
        window=timedelta(seconds=row["window_seconds"]),
        exclude_machine_opens=row["exclude_machine_opens"],
        conversions=tuple(
            domain.ConversionRule(
                c["conversion_id"],
                _changes(c["triggers"]),
                codec.money(c["value_currency"], c["value_micros"]),
            )
            for c in row["conversions"]
        ),
    )


def _changes(history: Sequence[Mapping[str, Any]]) -> tuple[domain.CriterionChange, ...]:
    """A goal or trigger history, as journey_rules.sql gives it (times as ISO text)."""
    return tuple(
        domain.CriterionChange(
            None if c["effective_time"] is None else datetime.fromisoformat(c["effective_time"]),
            codec.criterion_from_json(c["criterion"]),
        )
        for c in history
    )
