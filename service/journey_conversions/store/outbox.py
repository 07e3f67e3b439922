"""The ordered, resumable outbox of conversion events.

Positions are dense per tenant (1, 2, 3...). They are taken from outbox_heads under its row
lock, which the writing transaction holds until it commits, so a reader that has seen position
N has seen every position below it: nothing can commit later with a smaller one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from journey_conversions import domain
from journey_conversions.store import codec

NOTIFY_CHANNEL = "jc_conversion_events"


@dataclass(frozen=True, slots=True)
class StoredEvent:
    position: int
    event_type: domain.ConversionEventType
    award: domain.Award
    commit_time: datetime


def columns(
    events: Sequence[tuple[domain.ConversionEventType, domain.Award]],
) -> tuple[list[int], list[str]]:
    """The events as the arguments of append_conversion_events (migration 0012): their types,
    and their awards as JSON text."""
    return (
        [int(kind) for kind, _ in events],
        [json.dumps(codec.award_to_json(award)) for _, award in events],
    )


async def append(
    conn: asyncpg.Connection,
    tenant_id: str,
    events: Sequence[tuple[domain.ConversionEventType, domain.Award]],
) -> None:
    """Appends the events at the tenant's next positions (a re-decision appends its own, in
    write_decision)."""
    if not events:
        return
    await conn.execute(
        "select append_conversion_events($1, $2::smallint[], $3::text[], $4)",
        tenant_id,
        *columns(events),
        NOTIFY_CHANNEL,
    )


async def read_after(
    conn: asyncpg.Connection, tenant_id: str, after: int, limit: int
) -> list[StoredEvent]:
    rows = await conn.fetch(
        "select position, event_type, award, commit_time from conversion_events"
        " where tenant_id = $1 and position > $2 order by position limit $3",
        tenant_id,
        after,
        limit,
    )
    return [
        StoredEvent(
            r["position"],
            domain.ConversionEventType(r["event_type"]),
            codec.award_from_json(r["award"]),
            r["commit_time"],
        )
        for r in rows
    ]
