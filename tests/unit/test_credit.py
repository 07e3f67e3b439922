"""Credit models on hand-checked cases: shares per message, summing to one conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from journey_conversions.credit import Shares, split
from journey_conversions.domain import Action, Channel, Touchpoint

T = datetime(2026, 11, 1, tzinfo=UTC)


def touch(event_id: str, message_id: str, days_before: float) -> Touchpoint:
    return Touchpoint(
        event_id,
        "c1",
        "j1",
        1,
        message_id,
        Channel.EMAIL,
        Action.CLICKED,
        T - timedelta(days=days_before),
    )


class TestSplit:
    """Each model's shares, by message."""

    def test_one_touchpoint_takes_everything(self) -> None:
        assert split([touch("t1", "m1", 3)]) == {"m1": Shares(1.0, 1.0, 1.0, 1.0)}

    def test_two_touchpoints_half_and_half_by_position(self) -> None:
        shares = split([touch("t2", "m2", 0), touch("t1", "m1", 7)])
        assert shares["m1"].first_touch == 1.0 and shares["m2"].first_touch == 0.0
        assert shares["m1"].position_based == shares["m2"].position_based == 0.5
        # 2^(-7/7) = 0.5 against 2^0 = 1: one third and two thirds.
        assert shares["m1"].time_decay == pytest.approx(1 / 3)
        assert shares["m2"].time_decay == pytest.approx(2 / 3)

    def test_position_based_gives_the_middle_twenty_percent(self) -> None:
        touches = [touch(f"t{i}", f"m{i}", 10 - i) for i in range(5)]
        shares = split(touches)
        assert [shares[f"m{i}"].position_based for i in range(5)] == pytest.approx(
            [0.4, 0.2 / 3, 0.2 / 3, 0.2 / 3, 0.4]
        )
        assert [shares[f"m{i}"].linear for i in range(5)] == pytest.approx([0.2] * 5)

    def test_shares_of_one_message_add_up(self) -> None:
        shares = split([touch("t1", "m1", 2), touch("t2", "m2", 1), touch("t3", "m1", 0)])
        assert shares["m1"].linear == pytest.approx(2 / 3)
        assert shares["m1"].position_based == pytest.approx(0.8)
        assert shares["m2"].position_based == pytest.approx(0.2)

    def test_equal_times_are_ordered_by_event_id(self) -> None:
        shares = split([touch("b", "m2", 1), touch("a", "m1", 1)])
        assert (shares["m1"].first_touch, shares["m2"].first_touch) == (1.0, 0.0)

    def test_very_old_touchpoints_still_share_time_decay(self) -> None:
        shares = split([touch("t1", "m1", 20_000), touch("t2", "m2", 19_999)])
        total = shares["m1"].time_decay + shares["m2"].time_decay
        assert total == pytest.approx(1.0)
        assert shares["m2"].time_decay > shares["m1"].time_decay > 0.0
