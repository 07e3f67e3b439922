"""A report's cohort figures: per version, rates with intervals, the comparison with a baseline
version, holdout lift and time to conversion, built from counts the store reads.

The cohort of a report is the set of enrollments that entered in its range, followed up to the
range's end: a rate is then a proportion of enrollments (each converts at most once), which is
what the Wilson interval, Newcombe's difference interval and the z-test need.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from journey_conversions.stats import Difference, Rate, compare, wilson


@dataclass(frozen=True, slots=True)
class ArmCounts:
    """One version's treated or holdout enrollments that entered in the range."""

    entered: int = 0
    engaged: int = 0
    converted: int = 0
    converted_engaged: int = 0  # converted and engaged
    goal_met: int = 0

    def __add__(self, other: ArmCounts) -> ArmCounts:
        return ArmCounts(
            self.entered + other.entered,
            self.engaged + other.engaged,
            self.converted + other.converted,
            self.converted_engaged + other.converted_engaged,
            self.goal_met + other.goal_met,
        )


@dataclass(frozen=True, slots=True)
class VersionCounts:
    treated: ArmCounts = ArmCounts()
    holdout: ArmCounts = ArmCounts()

    def __add__(self, other: VersionCounts) -> VersionCounts:
        return VersionCounts(self.treated + other.treated, self.holdout + other.holdout)


@dataclass(frozen=True, slots=True)
class TimeToConversion:
    """Percentiles of the time conversions took; None when there were none."""

    conversions: int = 0
    median_from_entry: timedelta | None = None
    p90_from_entry: timedelta | None = None
    median_from_last_touch: timedelta | None = None
    p90_from_last_touch: timedelta | None = None


@dataclass(frozen=True, slots=True)
class HoldoutLift:
    treated: Rate
    holdout: Rate
    lift: Difference | None  # None unless both arms have enrollments


@dataclass(frozen=True, slots=True)
class VersionFigures:
    version: int
    entered: int
    engaged: int
    goal_conversions: int
    rate_entered: Rate
    rate_engaged: Rate
    difference_from_baseline: Difference | None  # None for the baseline, or an arm without entries
    holdout: HoldoutLift
    time_to_conversion: TimeToConversion
    value: dict[str, int] = field(default_factory=dict)  # currency -> micros


@dataclass
class SegmentFigures:
    """One step or path: reached enrollments, how many converted, the goal conversions credited
    to its messages, and (steps) the named conversions its marks awarded."""

    key: str
    reached: int = 0
    converted: int = 0  # of the reached ones, to whichever message
    goal_conversions: int = 0  # credited to a message on it
    named: dict[str, int] = field(default_factory=dict)  # conversion id -> awards

    @property
    def conversion_rate(self) -> Rate:
        return wilson(self.converted, self.reached)


STEP, PATH = 1, 2  # the segments of store/sql/report_reach.sql


@dataclass(frozen=True, slots=True)
class CohortFigures:
    versions: list[VersionFigures]
    baseline_version: int  # 0: no version had treated entries
    holdout: HoldoutLift
    time_to_conversion: TimeToConversion
    steps: list[SegmentFigures] = field(default_factory=list)
    paths: list[SegmentFigures] = field(default_factory=list)


def holdout_lift(counts: VersionCounts) -> HoldoutLift:
    """Goal-met rate of treated against holdout enrollments."""
    treated = wilson(counts.treated.goal_met, counts.treated.entered)
    holdout = wilson(counts.holdout.goal_met, counts.holdout.entered)
    lift = (
        compare(
            counts.treated.goal_met,
            counts.treated.entered,
            counts.holdout.goal_met,
            counts.holdout.entered,
        )
        if counts.holdout.entered and counts.treated.entered
        else None
    )
    return HoldoutLift(treated, holdout, lift)


def default_baseline(counts: Mapping[int, VersionCounts]) -> int:
    """The lowest version with treated entries, or 0 when there is none."""
    return min((v for v, c in counts.items() if c.treated.entered), default=0)


def figures(
    reported: Iterable[int],
    counts: Mapping[int, VersionCounts],
    baseline: int,
    durations: Mapping[int | None, TimeToConversion],
    values: Mapping[int, dict[str, int]],
) -> CohortFigures:
    """The figures of the `reported` versions (the baseline's counts may come from a version
    that is not reported); `durations` holds one entry per version and None for them all."""
    base = counts.get(baseline, VersionCounts()).treated
    versions: list[VersionFigures] = []
    total = VersionCounts()
    for version in sorted(reported):
        c = counts.get(version, VersionCounts())
        total += c
        t = c.treated
        versions.append(
            VersionFigures(
                version=version,
                entered=t.entered,
                engaged=t.engaged,
                goal_conversions=t.converted,
                rate_entered=wilson(t.converted, t.entered),
                rate_engaged=wilson(t.converted_engaged, t.engaged),
                difference_from_baseline=(
                    compare(t.converted, t.entered, base.converted, base.entered)
                    if baseline and version != baseline and t.entered and base.entered
                    else None
                ),
                holdout=holdout_lift(c),
                time_to_conversion=durations.get(version, TimeToConversion()),
                value=dict(sorted(values.get(version, {}).items())),
            )
        )
    return CohortFigures(
        versions=versions,
        baseline_version=baseline,
        holdout=holdout_lift(total),
        time_to_conversion=durations.get(None, TimeToConversion()),
    )
