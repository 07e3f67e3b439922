"""Whether a goal event meets a criterion, and which criterion is in force when."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from journey_conversions.domain import (
    MESSAGE_EVENT_CHANNEL,
    Criterion,
    CriterionChange,
    GoalEvent,
    GoalEventType,
)


def url_matches(pattern: str, url: str) -> bool:
    """An exact URL, or a prefix when the pattern ends in '*'."""
    if pattern.endswith("*"):
        return url.startswith(pattern[:-1])
    return url == pattern


def matches(criterion: Criterion, event: GoalEvent) -> bool:
    if criterion.event_type != event.event_type:
        return False
    kind = event.event_type
    if kind == GoalEventType.CONTACT_UPDATED:
        return event.attribute_name == criterion.attribute_name and (
            criterion.attribute_value is None or event.attribute_value == criterion.attribute_value
        )
    if kind == GoalEventType.CONTACT_ADDED_TO_LIST:
        return event.list_id in criterion.list_ids
    if kind in MESSAGE_EVENT_CHANNEL:
        return event.message_id in criterion.message_ids
    if kind == GoalEventType.WEBSITE_PAGE_VISITED:
        return any(url_matches(p, event.url) for p in criterion.url_patterns)
    if kind == GoalEventType.FORM_SUBMITTED:
        return event.form_id in criterion.form_ids
    if kind in (GoalEventType.ORDER_PLACED, GoalEventType.ORDER_UPDATED):
        return not criterion.product_ids or bool(criterion.product_ids & event.product_ids)
    return False


def in_force(history: Sequence[CriterionChange], when: datetime) -> Criterion | None:
    """The criterion of the latest change effective at or before `when`.

    `history` is ordered by effective time; a change with no effective time (the first
    definition) is in force from the start of time.
    """
    current: Criterion | None = None
    for change in history:
        if change.effective_time is None or change.effective_time <= when:
            current = change.criterion
        else:
            break
    return current
