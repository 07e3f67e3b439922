"""Which occur times the service accepts, and how far back attribution is still open."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Replicas' clocks differ a little: re-deciding one extra day of final outcomes is harmless
# (they come out the same) and keeps a slow clock from treating open outcomes as final.
HORIZON_MARGIN = timedelta(days=1)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Bounds:
    earliest: datetime
    latest: datetime


@dataclass(frozen=True, slots=True)
class TimePolicy:
    allowed_lateness: timedelta
    max_clock_skew: timedelta

    def bounds(self, now: datetime) -> Bounds:
        return Bounds(now - self.allowed_lateness, now + self.max_clock_skew)

    def horizon(self, now: datetime) -> datetime:
        """Goal events before this are final: no event accepted now can change them."""
        return now - self.allowed_lateness - HORIZON_MARGIN
