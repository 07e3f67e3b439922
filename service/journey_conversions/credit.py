"""Credit models: how one goal conversion's credit is split across the winning journey's
qualifying touchpoints in [T - window, T]. They split credit; they never move a conversion.

The touchpoints are ordered by time, then event id. Shares of touchpoints of the same message
add up, so a conversion gives each message one share per model, and each model's shares sum
to 1 (time decay up to rounding).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from journey_conversions.domain import Touchpoint

HALF_LIFE = timedelta(days=7)
POSITION_ENDS = 0.4  # position-based: each end's share when there are three or more


@dataclass(frozen=True, slots=True)
class Shares:
    """One message's share of a conversion under each split model (last touch is the rule's
    credited touchpoint and needs no share)."""

    first_touch: float = 0.0
    linear: float = 0.0
    position_based: float = 0.0
    time_decay: float = 0.0

    def __add__(self, other: Shares) -> Shares:
        return Shares(
            self.first_touch + other.first_touch,
            self.linear + other.linear,
            self.position_based + other.position_based,
            self.time_decay + other.time_decay,
        )


def _position_weights(n: int) -> list[float]:
    """40 / 20 / 40 (the 20 split evenly among the middle ones); 50 / 50 with two; all with one."""
    if n == 1:
        return [1.0]
    if n == 2:
        return [0.5, 0.5]
    middle = (1.0 - 2 * POSITION_ENDS) / (n - 2)
    return [POSITION_ENDS] + [middle] * (n - 2) + [POSITION_ENDS]


def split(touchpoints: Sequence[Touchpoint]) -> dict[str, Shares]:
    """Each message's shares of a conversion, credited across `touchpoints`: the winning
    journey's qualifying ones in [T - window, T] (at least one)."""
    ordered = sorted(touchpoints, key=lambda t: (t.occur_time, t.event_id))
    n = len(ordered)
    positions = _position_weights(n)
    # Time decay: weight 2^(-age / half-life) at the conversion's time, normalised. Measured
    # from the newest touchpoint instead of `at` (the same after normalising), the newest
    # weighs 1, so the total cannot underflow to 0 however old the touchpoints are.
    newest = ordered[-1].occur_time
    decays = [2.0 ** -((newest - t.occur_time) / HALF_LIFE) for t in ordered]
    total_decay = sum(decays)
    shares: dict[str, Shares] = {}
    for i, touchpoint in enumerate(ordered):
        share = Shares(
            first_touch=1.0 if i == 0 else 0.0,
            linear=1.0 / n,
            position_based=positions[i],
            time_decay=decays[i] / total_decay,
        )
        shares[touchpoint.message_id] = shares.get(touchpoint.message_id, Shares()) + share
    return shares
