"""What a journey report is asked for: the journey, versions, range, baseline and time zone."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

UTC_ZONE = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class ReportQuery:
    journey_id: str
    version: int  # 0: all
    start: datetime
    end: datetime
    baseline: int = 0  # 0: the lowest version with treated entries
    zone: ZoneInfo = UTC_ZONE
    full: bool = True  # False: the activity summary only (REPORT_VIEW_BASIC)

    def args(self, tenant_id: str) -> tuple[str, str, int, datetime, datetime]:
        """The first five arguments of the report statements: tenant, journey, version, and
        the range [start, end)."""
        return (tenant_id, self.journey_id, self.version, self.start, self.end)

    def cohort_args(self, tenant_id: str) -> tuple[str, str, datetime, datetime, int]:
        """The first five arguments of the cohort statements: tenant, journey, the entry range
        [start, end), and version."""
        return (tenant_id, self.journey_id, self.start, self.end, self.version)

    def start_day(self) -> tuple[datetime, datetime]:
        """The UTC day holding the start, as [from, to): report_day in SQL (migration 0005).
        The cohort counts hold whole days; a report reads this one's enrollments itself."""
        day = self.start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        return day, day + timedelta(days=1)

    def count_edge(self) -> tuple[datetime, datetime, datetime]:
        """Where the cohort counts of whole UTC days begin for this range, and the span between
        there and the start whose enrollments a report reads itself, as (counts_from, span_from,
        span_to). The day holding the start is counted as in the range when the start lies in
        its first half (the span is its part before the start), and as before the range when
        in its second half (the span is its part from the start): the raw read is never more
        than half a day of the journey's enrollments."""
        day, next_day = self.start_day()
        if self.start - day <= next_day - self.start:
            return day, day, self.start
        return next_day, self.start, next_day
