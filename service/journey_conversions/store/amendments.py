"""Value amendments of final goal conversions: an ORDER_UPDATED that amends a goal event older
than the re-decision horizon. Newer ones are re-decided with their contact (the rule reads
amendments, attribution.amended_values); a final conversion is never re-decided, so its credited
value is updated here, and the change emitted as UPDATED like any other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import asyncpg

from journey_conversions import domain
from journey_conversions.store import codec, outbox, sql


async def apply_to_final_awards(
    conn: asyncpg.Connection,
    tenant_id: str,
    amendments: Sequence[domain.GoalEvent],
    since: datetime,
) -> None:
    targets = sorted({a.amends_event_id for a in amendments if a.amends_event_id})
    if not targets:
        return
    rows = await conn.fetch(sql.statement("final_amended_awards"), tenant_id, targets, since)
    updated = [
        replace(codec.award(r), value=codec.money(r["amended_currency"], r["amended_micros"]))
        for r in rows
    ]
    for award in updated:
        currency, micros = codec.money_columns(award.value)
        for table in ("awards", "conversion_credits"):
            await conn.execute(
                f"update {table} set value_currency = $3, value_micros = $4"
                " where tenant_id = $1 and enrollment_id = $2"
                + (" and conversion_id = ''" if table == "awards" else ""),
                tenant_id,
                award.enrollment_id,
                currency,
                micros,
            )
    await outbox.append(
        conn, tenant_id, [(domain.ConversionEventType.UPDATED, award) for award in updated]
    )
