"""activity.day_cover: counting a range from daily counts plus and minus raw spans counts exactly
the instants inside the range, and reads at most half a day of raw rows at each end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from journey_conversions.store.activity import day_cover

BASE = datetime(2026, 11, 1, tzinfo=UTC)
moments = st.integers(min_value=0, max_value=10 * 86_400 * 1_000).map(
    lambda ms: BASE + timedelta(milliseconds=ms)
)


def day_of(t: datetime) -> datetime:
    return datetime(t.year, t.month, t.day, tzinfo=UTC)


@given(st.lists(moments, max_size=60), moments, moments)
def test_days_plus_and_minus_spans_count_the_range(
    events: list[datetime], a: datetime, b: datetime
) -> None:
    start, end = min(a, b), max(a, b)
    cover = day_cover(start, end)
    # Midnights and the range's own ends are where off-by-one errors live.
    events += [start, end, day_of(start), day_of(end), end - timedelta(microseconds=1)]
    counted = sum(cover.first_day <= t < cover.last_day for t in events)
    counted += sum(x <= t < y for x, y in cover.add for t in events)
    counted -= sum(x <= t < y for x, y in cover.subtract for t in events)
    assert counted == sum(start <= t < end for t in events)
    raw = sum((y - x for x, y in cover.add + cover.subtract), timedelta())
    assert raw <= timedelta(days=1)  # at most half a day at each end


def test_a_range_ending_now_reads_only_what_lies_after_now() -> None:
    now = datetime(2026, 11, 30, 18, 0, tzinfo=UTC)
    cover = day_cover(datetime(1970, 1, 1, tzinfo=UTC), now)
    assert (cover.first_day, cover.last_day) == (
        datetime(1970, 1, 1, tzinfo=UTC),
        now.replace(hour=0) + timedelta(days=1),
    )
    assert cover.add == []
    assert cover.subtract == [(now, now.replace(hour=0) + timedelta(days=1))]


def test_a_short_range_inside_one_day_is_read_directly() -> None:
    start = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    cover = day_cover(start, start + timedelta(hours=2))
    assert cover.add == [(start, start + timedelta(hours=2))] and cover.subtract == []
    assert cover.first_day == cover.last_day
