"""Keeping each goal conversion's credit split (credit.py) beside its award: re-decisions write
only the rows that changed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import asyncpg

from journey_conversions import domain
from journey_conversions.store import codec

_COLUMNS = (
    "tenant_id, enrollment_id, message_id, contact_id, journey_id, version, award_time,"
    " first_touch, linear, position_based, time_decay, value_currency, value_micros"
)
Row = tuple[Any, ...]


def _rows(tenant_id: str, decisions: Iterable[domain.Decision]) -> dict[tuple[str, str], Row]:
    rows: dict[tuple[str, str], Row] = {}
    for decision in decisions:
        for enrollment_id, shares in decision.credits.items():
            award = decision.awards[(enrollment_id, domain.GOAL_CONVERSION)]
            currency, micros = codec.money_columns(award.value)
            for message_id, share in shares.items():
                rows[(enrollment_id, message_id)] = (
                    tenant_id,
                    enrollment_id,
                    message_id,
                    award.contact_id,
                    award.journey_id,
                    award.version,
                    award.award_time,
                    share.first_touch,
                    share.linear,
                    share.position_based,
                    share.time_decay,
                    currency,
                    micros,
                )
    return rows


async def write(
    conn: asyncpg.Connection,
    tenant_id: str,
    contacts: list[str],
    decisions: Iterable[domain.Decision],
    since: datetime,
) -> None:
    """Replaces the contacts' credit rows from `since` on that differ from the decisions'."""
    stored = {
        (r["enrollment_id"], r["message_id"]): tuple(r.values())
        for r in await conn.fetch(
            f"select {_COLUMNS} from conversion_credits"
            " where tenant_id = $1 and contact_id = any($2::text[]) and award_time >= $3",
            tenant_id,
            contacts,
            since,
        )
    }
    computed = _rows(tenant_id, decisions)
    stale = [key for key, row in stored.items() if computed.get(key) != row]
    fresh = [row for key, row in computed.items() if stored.get(key) != row]
    if stale:
        await conn.execute(
            "delete from conversion_credits as c using unnest($2::text[], $3::text[]) as k(e, m)"
            " where c.tenant_id = $1 and c.enrollment_id = k.e and c.message_id = k.m",
            tenant_id,
            [e for e, _ in stale],
            [m for _, m in stale],
        )
    if fresh:
        await conn.executemany(
            f"insert into conversion_credits ({_COLUMNS})"
            " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            fresh,
        )
