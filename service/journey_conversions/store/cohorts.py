"""Reading a report's participation and cohort (the enrollments that entered in its range) from
the cohort counts that writes keep per day (migration 0005) and the few enrollments
they count wrongly for the range, the cohort's awards (which carry their enrollment's entry,
migration 0003), and the steps and paths they reached; touchpoints only for the few enrollments
whose last touch does not tell whether they were engaged in the range."""

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
class Participation:
    """The treated enrollments of the versions asked for, in the report's range: entered in it,
    active (entered before its end, not exited before its start), exited in it, and engaged
    (active and touched in it while enrolled)."""

    entered: int = 0
    active: int = 0
    exited: int = 0
    engaged: int = 0


@dataclass
class CohortRows:
    """What a report reads of its enrollments."""

    participation: Participation = field(default_factory=Participation)
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
    """Participation, and with the full view the cohort: per version and arm, then the time
    its conversions took and their value."""
    found = CohortRows()
    shown = found.participation
    args = (tenant_id, q.journey_id, q.start, q.end, exclude_machine_opens)
    counts_from, span_from, span_to = q.count_edge()
    enrollments = await conn.fetch(
        sql.statement("report_enrollments"), *args, span_from, span_to, counts_from
    )
    for row in enrollments:
        version = row["version"]
        if not row["holdout"] and q.version in (0, version):
            shown.entered += row["entered"]
            shown.active += row["active"]
            shown.exited += row["exited"]
            shown.engaged += row["last_touched"]
        arm = ArmCounts(
            row["entered"],
            row["engaged"],
            row["converted"],
            row["converted_engaged"],
            row["goal_met"],
        )
        both = found.counts.get(version, VersionCounts())
        found.counts[version] = (
            VersionCounts(both.treated, arm) if row["holdout"] else VersionCounts(arm, both.holdout)
        )
    edge_args = (*args, q.start_day()[0])
    for row in await conn.fetch(sql.statement("report_engaged_edges"), *edge_args):
        if not row["holdout"] and q.version in (0, row["version"]):
            shown.engaged += row["engaged"]
    if not q.full:
        return found
    for row in await conn.fetch(
        sql.statement("report_conversion_times"), *q.cohort_args(tenant_id)
    ):
        version = row["version"]
        if row["part"] == "times":
            entry, touch = row["from_entry"], row["from_last_touch"]
            found.durations[version] = TimeToConversion(
                conversions=row["conversions"],
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
    counts_from, span_from, span_to = q.count_edge()
    reach = await conn.fetch(sql.statement("report_reach"), *args, span_from, span_to, counts_from)
    for row in reach:
        segment = figures(row["segment"], row["key"])
        segment.reached, segment.converted = row["reached"], row["converted"]
    for row in await conn.fetch(sql.statement("report_segment_awards"), *args):
        segment = figures(row["segment"], row["key"])
        if row["conversion_id"]:
            segment.named[row["conversion_id"]] = row["n"]
        else:
            segment.goal_conversions = row["n"]
    return {segment: [keys[k] for k in sorted(keys)] for segment, keys in found.items()}
