"""Short builders of domain values for readable rule tests (one contact, times in days)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from journey_conversions.attribution import decide
from journey_conversions.domain import (
    DEFAULT_ATTRIBUTION_WINDOW,
    Action,
    AwardSource,
    Channel,
    ContactHistory,
    ConversionRule,
    Criterion,
    CriterionChange,
    Decision,
    Enrollment,
    GoalEvent,
    GoalEventType,
    JourneyRules,
    Money,
    Outcome,
    OutcomeStatus,
    StepMark,
    Touchpoint,
)

CONTACT = "c1"
START = datetime(2024, 5, 1, tzinfo=UTC)
ORDER = Criterion(GoalEventType.ORDER_PLACED)  # any order placed


def day(n: float) -> datetime:
    """`n` days after START (fractions allowed: day(2.5) is noon of day 2)."""
    return START + timedelta(days=n)


def always(criterion: Criterion | None) -> tuple[CriterionChange, ...]:
    """A history with one criterion, in force from the start of time."""
    return (CriterionChange(None, criterion),)


def journey(
    journey_id: str,
    goal: Criterion | None = ORDER,
    *,
    goal_history: tuple[CriterionChange, ...] | None = None,
    window: timedelta = DEFAULT_ATTRIBUTION_WINDOW,
    exclude_machine_opens: bool = False,
    conversions: tuple[ConversionRule, ...] = (),
) -> JourneyRules:
    return JourneyRules(
        journey_id,
        goal_history=always(goal) if goal_history is None else goal_history,
        window=window,
        exclude_machine_opens=exclude_machine_opens,
        conversions=conversions,
    )


def enrolled(
    enrollment_id: str, journey_id: str, enter: datetime, exit_at: datetime | None = None
) -> Enrollment:
    return Enrollment(enrollment_id, CONTACT, journey_id, 1, enter, exit_at)


def touch(
    event_id: str,
    journey_id: str,
    when: datetime,
    action: Action = Action.CLICKED,
    *,
    machine_generated: bool = False,
) -> Touchpoint:
    return Touchpoint(
        event_id,
        CONTACT,
        journey_id,
        1,
        f"{journey_id}-email",
        Channel.EMAIL,
        action,
        when,
        machine_generated=machine_generated,
    )


def order(event_id: str, when: datetime, value: Money | None = None) -> GoalEvent:
    return GoalEvent(event_id, CONTACT, GoalEventType.ORDER_PLACED, when, value=value)


def signup(event_id: str, when: datetime) -> GoalEvent:
    """A goal event that no ORDER goal matches."""
    return GoalEvent(event_id, CONTACT, GoalEventType.FORM_SUBMITTED, when, form_id="signup")


def mark(
    event_id: str,
    enrollment_id: str,
    conversion_id: str,
    when: datetime,
    source: AwardSource = AwardSource.CONVERT_STEP,
    step_id: str = "step",
) -> StepMark:
    return StepMark(event_id, enrollment_id, conversion_id, step_id, when, source)


def run(
    journeys: Iterable[JourneyRules],
    enrollments: Iterable[Enrollment] = (),
    touchpoints: Iterable[Touchpoint] = (),
    goal_events: Iterable[GoalEvent] = (),
    marks: Iterable[StepMark] = (),
    *,
    converted_before: Iterable[str] = (),
    awarded_before: Iterable[tuple[str, str]] = (),
) -> Decision:
    """`decide` on one contact's history."""
    return decide(
        ContactHistory(
            contact_id=CONTACT,
            journeys={j.journey_id: j for j in journeys},
            enrollments=tuple(enrollments),
            touchpoints=tuple(touchpoints),
            goal_events=tuple(goal_events),
            marks=tuple(marks),
            converted_before=frozenset(converted_before),
            awarded_before=frozenset(awarded_before),
        )
    )


def credited(outcome: Outcome) -> tuple[OutcomeStatus, str, str, str]:
    """(status, journey, enrollment, touchpoint event id) of an outcome."""
    touchpoint = outcome.touchpoint.event_id if outcome.touchpoint else ""
    return (outcome.status, outcome.journey_id, outcome.enrollment_id, touchpoint)
