"""Domain values to and from database rows and JSON columns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg

from journey_conversions import domain

Row = Mapping[str, Any] | asyncpg.Record


def criterion_to_json(value: domain.Criterion | None) -> dict[str, Any] | None:
    if value is None:
        return None
    return {
        "event_type": int(value.event_type),
        "attribute_name": value.attribute_name,
        "attribute_value": value.attribute_value,
        "list_ids": sorted(value.list_ids),
        "message_ids": sorted(value.message_ids),
        "url_patterns": list(value.url_patterns),
        "form_ids": sorted(value.form_ids),
        "product_ids": sorted(value.product_ids),
    }


def criterion_from_json(value: Mapping[str, Any] | None) -> domain.Criterion | None:
    if value is None:
        return None
    return domain.Criterion(
        event_type=domain.GoalEventType(value["event_type"]),
        attribute_name=value["attribute_name"],
        attribute_value=value["attribute_value"],
        list_ids=frozenset(value["list_ids"]),
        message_ids=frozenset(value["message_ids"]),
        url_patterns=tuple(value["url_patterns"]),
        form_ids=frozenset(value["form_ids"]),
        product_ids=frozenset(value["product_ids"]),
    )


def criterion_change(row: Row) -> domain.CriterionChange:
    return domain.CriterionChange(row["effective_time"], criterion_from_json(row["criterion"]))


def money(currency: str | None, micros: int | None) -> domain.Money | None:
    if currency is None or micros is None:
        return None
    return domain.Money(currency, micros)


def money_columns(value: domain.Money | None) -> tuple[str | None, int | None]:
    if value is None:
        return None, None
    return value.currency_code, value.amount_micros


def touchpoint(row: Row) -> domain.Touchpoint:
    return domain.Touchpoint(
        event_id=row["event_id"],
        contact_id=row["contact_id"],
        journey_id=row["journey_id"],
        version=row["version"],
        message_id=row["message_id"],
        channel=domain.Channel(row["channel"]),
        action=domain.Action(row["action"]),
        occur_time=row["occur_time"],
        machine_generated=row["machine_generated"],
    )


def goal_event(row: Row) -> domain.GoalEvent:
    return domain.GoalEvent(
        event_id=row["event_id"],
        contact_id=row["contact_id"],
        event_type=domain.GoalEventType(row["event_type"]),
        occur_time=row["occur_time"],
        attribute_name=row["attribute_name"],
        attribute_value=row["attribute_value"],
        list_id=row["list_id"],
        message_id=row["message_id"],
        url=row["url"],
        form_id=row["form_id"],
        product_ids=frozenset(row["product_ids"]),
        value=money(row["value_currency"], row["value_micros"]),
        amends_event_id=row["amends_event_id"],
    )


def enrollment(row: Row) -> domain.Enrollment:
    return domain.Enrollment(
        enrollment_id=row["enrollment_id"],
        contact_id=row["contact_id"],
        journey_id=row["journey_id"],
        version=row["version"],
        enter_time=row["enter_time"],
        exit_time=row["exit_time"],
        exit_reason=domain.ExitReason(row["exit_reason"]),
        holdout=row["holdout"],
    )


def award(row: Row) -> domain.Award:
    return domain.Award(
        contact_id=row["contact_id"],
        journey_id=row["journey_id"],
        enrollment_id=row["enrollment_id"],
        version=row["version"],
        conversion_id=row["conversion_id"],
        source=domain.AwardSource(row["source"]),
        award_time=row["award_time"],
        goal_event_id=row["goal_event_id"],
        touchpoint_event_id=row["touchpoint_event_id"],
        message_id=row["message_id"],
        step_id=row["step_id"],
        value=money(row["value_currency"], row["value_micros"]),
        # Events written before touchpoint times were kept have none.
        touchpoint_time=row.get("touchpoint_time"),
    )


def award_to_json(value: domain.Award) -> dict[str, Any]:
    currency, micros = money_columns(value.value)
    return {
        "contact_id": value.contact_id,
        "journey_id": value.journey_id,
        "enrollment_id": value.enrollment_id,
        "version": value.version,
        "conversion_id": value.conversion_id,
        "source": int(value.source),
        "award_time": value.award_time.isoformat(),
        "goal_event_id": value.goal_event_id,
        "touchpoint_event_id": value.touchpoint_event_id,
        "message_id": value.message_id,
        "step_id": value.step_id,
        "value_currency": currency,
        "value_micros": micros,
        "touchpoint_time": value.touchpoint_time.isoformat() if value.touchpoint_time else None,
    }


def award_from_json(value: Mapping[str, Any]) -> domain.Award:
    row = dict(value)
    row["award_time"] = datetime.fromisoformat(value["award_time"])
    if value.get("touchpoint_time"):
        row["touchpoint_time"] = datetime.fromisoformat(value["touchpoint_time"])
    return award(row)
