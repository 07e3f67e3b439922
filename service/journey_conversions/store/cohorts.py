"""Reading a report's cohort (the enrollments that entered in its range) from the per-enrollment
facts that writes keep (migration 0002): one pass over the journey's enrollments in the range,
and the steps and paths they reached, never over their touchpoints."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass
class CohortRows:
    """What one pass over a report's cohort reads."""

    counts: dict[int, VersionCounts] = field(default_factory=dict)  # every version
    # per version asked for, and under None over all of them
    durations: dict[int | None, TimeToConversion] = field(default_factory=dict)
    values: dict[int, dict[str, int]] = field(default_factory=dict)  # currency -> micros


def _seconds(values: list[float] | None, index: int) -> timedelta | None:
    if not values or values[index] is None:
        return None
    return timedelta(seconds=float(values[index]))


async def read(
    conn: asyncpg.Connection, tenant_id: str, q: ReportQuery, exclude_machine_opens: bool
) -> CohortRows:
    found = CohortRows()
    for row in await conn.fetch(
        sql.statement("cohort_counts"), *q.cohort_args(tenant_id), exclude_machine_opens
    ):
        version = row["version"]
        if row["part"] == "counts":
            arm = ArmCounts(
                row["entered"],
                row["engaged"],
                row["converted"],
                row["converted_engaged"],
                row["goal_met"],
            )
            both = found.counts.get(version, VersionCounts())
            found.counts[version] = (
                VersionCounts(both.treated, arm)
                if row["holdout"]
                else VersionCounts(arm, both.holdout)
            )
        elif row["part"] == "times":
            entry, touch = row["from_entry"], row["from_last_touch"]
            found.durations[version] = TimeToConversion(
                conversions=row["entered"],
                median_from_entry=_seconds(entry, 0),
                p90_from_entry=_seconds(entry, 1),
                median_from_last_touch=_seconds(touch, 0),
                p90_from_last_touch=_seconds(touch, 1),
            )
        else:
            found.values.setdefault(version, {})[row["currency"]] = int(row["micros"])
    return found


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
