"""Reading a report's cohort (the enrollments that entered in its range) from the per-enrollment
facts that writes keep (migration 0002): a scan of the journey's enrollments in the range, never
of its touchpoints."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

import asyncpg

from journey_conversions.cohorts import (
    ArmCounts,
    SegmentFigures,
    TimeToConversion,
    VersionCounts,
)
from journey_conversions.store import sql
from journey_conversions.store.report_query import ReportQuery


async def version_counts(
    conn: asyncpg.Connection, tenant_id: str, q: ReportQuery, exclude_machine_opens: bool
) -> dict[int, VersionCounts]:
    """Every version's counts (also those not reported: one may be the baseline)."""
    counts: dict[int, VersionCounts] = defaultdict(VersionCounts)
    for row in await conn.fetch(
        sql.statement("cohort_counts"),
        tenant_id,
        q.journey_id,
        q.start,
        q.end,
        0,
        exclude_machine_opens,
    ):
        arm = ArmCounts(
            row["entered"],
            row["engaged"],
            row["converted"],
            row["converted_engaged"],
            row["goal_met"],
        )
        version = counts[row["version"]]
        if row["holdout"]:
            counts[row["version"]] = VersionCounts(version.treated, arm)
        else:
            counts[row["version"]] = VersionCounts(arm, version.holdout)
    return dict(counts)


def _seconds(values: list[float] | None, index: int) -> timedelta | None:
    if not values or values[index] is None:
        return None
    return timedelta(seconds=float(values[index]))


async def time_to_conversion(
    conn: asyncpg.Connection, tenant_id: str, q: ReportQuery
) -> dict[int | None, TimeToConversion]:
    """Per version, and under None over all the versions asked for."""
    found: dict[int | None, TimeToConversion] = {}
    for row in await conn.fetch(sql.statement("cohort_conversions"), *q.cohort_args(tenant_id)):
        entry, touch = row["from_entry"], row["from_last_touch"]
        found[row["version"]] = TimeToConversion(
            conversions=row["conversions"],
            median_from_entry=_seconds(entry, 0),
            p90_from_entry=_seconds(entry, 1),
            median_from_last_touch=_seconds(touch, 0),
            p90_from_last_touch=_seconds(touch, 1),
        )
    return found


async def values(
    conn: asyncpg.Connection, tenant_id: str, q: ReportQuery
) -> dict[int, dict[str, int]]:
    """Per version, the value of its cohort's goal conversions, per currency (micros)."""
    found: dict[int, dict[str, int]] = defaultdict(dict)
    for row in await conn.fetch(sql.statement("cohort_value"), *q.cohort_args(tenant_id)):
        found[row["version"]][row["currency"]] = row["micros"]
    return dict(found)


async def segments(
    conn: asyncpg.Connection, tenant_id: str, q: ReportQuery, known: dict[int, set[str]]
) -> dict[int, list[SegmentFigures]]:
    """Per segment (STEP, PATH), each key's figures in key order: the `known` keys (the steps
    and paths of the reported versions' messages) and any other that has figures."""
    found: dict[int, dict[str, SegmentFigures]] = {
        segment: {key: SegmentFigures(key) for key in keys} for segment, keys in known.items()
    }

    def figures(segment: int, key: str) -> SegmentFigures:
        return found.setdefault(segment, {}).setdefault(key, SegmentFigures(key))

    args = q.cohort_args(tenant_id)
    for row in await conn.fetch(sql.statement("report_reach"), *args):
        segment = figures(row["segment"], row["key"])
        segment.reached, segment.converted = row["reached"], row["converted"]
    for row in await conn.fetch(sql.statement("report_segment_awards"), *args):
        segment = figures(row["segment"], row["key"])
        if row["conversion_id"]:
            segment.named[row["conversion_id"]] = row["n"]
        else:
            segment.goal_conversions = row["n"]
    return {segment: [keys[k] for k in sorted(keys)] for segment, keys in found.items()}
