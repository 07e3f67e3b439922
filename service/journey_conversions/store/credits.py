"""Keeping each goal conversion's credit split (credit.py) beside its award."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from journey_conversions import domain
from journey_conversions.store import codec, derived

TABLE = derived.Table(
    name="conversion_credits",
    columns=(
        "tenant_id",
        "enrollment_id",
        "message_id",
        "contact_id",
        "journey_id",
        "version",
        "award_time",
        "first_touch",
        "linear",
        "position_based",
        "time_decay",
        "value_currency",
        "value_micros",
    ),
    key=("enrollment_id", "message_id"),
)


def _rows(
    tenant_id: str, decisions: Iterable[domain.Decision]
) -> dict[tuple[Any, ...], derived.Row]:
    rows: dict[tuple[Any, ...], derived.Row] = {}
    for decision in decisions:
        for enrollment_id, shares in decision.credits.items():
            award = decision.awards[(enrollment_id, domain.GOAL_CONVERSION)]
            currency, micros = codec.money_columns(award.value)
            for message_id, share in shares.items():
                rows[(enrollment_id, message_id)] = (
                    tenant_id,
                    enrollment_id,
                    message_id,
                    award.contact_id,
                    award.journey_id,
                    award.version,
                    award.award_time,
                    share.first_touch,
                    share.linear,
                    share.position_based,
                    share.time_decay,
                    currency,
                    micros,
                )
    return rows


def difference(
    tenant_id: str, stored: Sequence[asyncpg.Record] | None, decisions: Iterable[domain.Decision]
) -> derived.Difference:
    """What to write of the re-decided contacts' credits: `stored` those they had from the
    horizon on."""
    return derived.difference(TABLE, stored, _rows(tenant_id, decisions))
