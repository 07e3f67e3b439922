"""The ordered, resumable outbox of conversion events.

Positions are dense per tenant (1, 2, 3...). They are taken from outbox_heads under its row
lock, which the writing transaction holds until it commits, so a reader that has seen position
N has seen every position below it: nothing can commit later with a smaller one.
"""

from __future__ import annotations

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


async def append(
    conn: asyncpg.Connection,
    tenant_id: str,
    events: Sequence[tuple[domain.ConversionEventType, domain.Award]],
) -> None:
    if not events:
        return
    last = await conn.fetchval(
        "insert into outbox_heads as h (tenant_id, last_position) values ($1, $2)"
        " on conflict (tenant_id) do update set last_position = h.last_position + $2"
        " returning last_position",
        tenant_id,
        len(events),
    )
    first = last - len(events) + 1
    await conn.executemany(
        "insert into conversion_events (tenant_id, position, event_type, award)"
        " values ($1, $2, $3, $4)",
        [
            (tenant_id, first + i, int(kind), codec.award_to_json(award))
            for i, (kind, award) in enumerate(events)
        ],
    )
    # Delivered to listeners when (and only if) the transaction commits.
    await conn.execute("select pg_notify($1, $2)", NOTIFY_CHANNEL, tenant_id)


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
