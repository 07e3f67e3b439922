"""Recomputing the per-enrollment report facts (first touches; steps and paths reached) of some
enrollments from the stored touchpoints. Touchpoint writes keep them incrementally
(sql/insert_touchpoints.sql); this is for what can move them otherwise: an entry after its
touchpoints, an exit that ends the period, and rebuilds."""

from __future__ import annotations

import asyncpg

from journey_conversions.store import sql


async def recompute(
    conn: asyncpg.Connection, tenant_id: str, enrollment_ids: list[str], *, new: bool = False
) -> None:
    """`new`: the enrollments were just inserted, so they have no reach rows to clear yet (one
    statement fewer on the EnterJourney path)."""
    await conn.execute(sql.statement("touch_facts"), tenant_id, enrollment_ids)
    if not new:
        await conn.execute(
            "delete from enrollment_reach where tenant_id = $1 and enrollment_id = any($2::text[])",
            tenant_id,
            enrollment_ids,
        )
    await conn.execute(sql.statement("reach_facts"), tenant_id, enrollment_ids)
