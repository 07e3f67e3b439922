"""Keeping, for each goal event that went to a journey, the other journeys whose participant the
contact was at that moment (an enrollment active at the event's time): a report's "credited
elsewhere" reads these rows of its own journey instead of every outcome of the tenant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg

from journey_conversions import domain
from journey_conversions.store import derived

TABLE = derived.Table(
    name="credited_elsewhere",
    columns=(
        "tenant_id",
        "journey_id",
        "version",
        "goal_event_id",
        "contact_id",
        "occur_time",
        "credited_journey_id",
    ),
    key=("journey_id", "version", "goal_event_id"),
)


def _rows(
    tenant_id: str,
    histories: Mapping[str, domain.ContactHistory],
    decisions: Mapping[str, domain.Decision],
) -> dict[tuple[Any, ...], derived.Row]:
    rows: dict[tuple[Any, ...], derived.Row] = {}
    for contact, history in histories.items():
        for event in history.goal_events:
            winner = decisions[contact].outcomes[event.event_id].journey_id
            if not winner:
                continue
            for e in history.enrollments:
                if e.journey_id != winner and e.active_at(event.occur_time):
                    key = (e.journey_id, e.version, event.event_id)
                    rows[key] = (tenant_id, *key, contact, event.occur_time, winner)
    return rows


def difference(
    tenant_id: str,
    stored: Sequence[asyncpg.Record] | None,
    histories: Mapping[str, domain.ContactHistory],
    decisions: Mapping[str, domain.Decision],
) -> derived.Difference:
    """What to write of the re-decided contacts' rows: `stored` those they had from the horizon
    on."""
    return derived.difference(TABLE, stored, _rows(tenant_id, histories, decisions))
