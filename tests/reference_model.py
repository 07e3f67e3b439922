"""A reference model of goal attribution and awards, written straight from DOMAIN.md.

It is deliberately naive: for every goal event it scans every journey, enrollment and
touchpoint again, and it shares no code with `journey_conversions.attribution` or
`journey_conversions.criteria` (only the value types of `journey_conversions.domain`). Tests
compare the service against it, so it must stay small enough to check by reading.

The rules, as DOMAIN.md and the README state them:
- the goal (or trigger) in force at T is the last change effective at or before T; a change
  with no effective time is in force from the start of time; a None criterion means none;
- a contact is an active participant of an enrollment at T when it entered at or before T and
  had not exited before T;
- holdout enrollments (a control group) are never credited, by the goal or by a trigger;
- a touchpoint of journey J qualifies for T when it is in [T - window, T] and is not a
  machine-generated open of a journey that excludes those;
- goal events are decided in (occur time, event id) order; among the journeys whose goal
  matches and which have an active enrollment and a qualifying touchpoint, the one with the
  latest touchpoint wins (the smallest journey id on a tie); the credited touchpoint is the
  latest (smallest event id on a tie) and the credited enrollment the active one that entered
  last (smallest enrollment id on a tie); an enrollment's first winning event converts it,
  later ones are repeats;
- a goal conversion credits its event's value, or the value of the event's latest amendment
  (an event naming it in amends_event_id, of the same contact, at or after it);
- named conversions are earned by triggers (same eligibility, in every journey, not only the
  winner) and by step marks; each (enrollment, conversion) keeps its earliest award by
  (time, CONVERT_STEP < EVALUATE_GOAL_STEP < TRIGGER, step id, goal event id).

Inputs are sets: duplicates are ignored and order does not matter. Many contacts may be mixed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from journey_conversions.domain import (
    GOAL_CONVERSION,
    MESSAGE_EVENT_CHANNEL,
    Action,
    AwardSource,
    Criterion,
    CriterionChange,
    Enrollment,
    GoalEvent,
    GoalEventType,
    JourneyRules,
    Money,
    OutcomeStatus,
    StepMark,
    Touchpoint,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DAWN = datetime.min.replace(tzinfo=UTC)  # when a change without an effective time applies

_SOURCE_RANK = {
    AwardSource.CONVERT_STEP: 0,
    AwardSource.EVALUATE_GOAL_STEP: 1,
    AwardSource.TRIGGER: 2,
}


class ModelOutcome(NamedTuple):
    """Where one goal event's goal conversion went."""

    status: OutcomeStatus
    journey_id: str = ""
    enrollment_id: str = ""
    touchpoint_event_id: str = ""


class ModelAward(NamedTuple):
    """One award; `goal_event_id` and `touchpoint_event_id` are empty for step marks."""

    source: AwardSource
    goal_event_id: str
    touchpoint_event_id: str
    award_time: datetime
    step_id: str = ""
    value: Money | None = None


@dataclass(frozen=True)
class ModelResult:
    outcomes: dict[str, ModelOutcome]  # by goal event id
    awards: dict[tuple[str, str], ModelAward]  # by (enrollment id, conversion id); "" = goal


# One predicate per row of DOMAIN.md's goal table: does the event pass the criterion's filter?
_Filter = Callable[[Criterion, GoalEvent], bool]


def _contact_updated(c: Criterion, e: GoalEvent) -> bool:
    if e.attribute_name != c.attribute_name:
        return False
    return c.attribute_value is None or c.attribute_value == e.attribute_value


def _page_visited(c: Criterion, e: GoalEvent) -> bool:
    for pattern in c.url_patterns:
        if pattern == e.url:
            return True
        if pattern.endswith("*") and e.url.startswith(pattern[:-1]):
            return True
    return False


def _order(c: Criterion, e: GoalEvent) -> bool:
    if not c.product_ids:
        return True
    return any(p in c.product_ids for p in e.product_ids)


_FILTERS: dict[GoalEventType, _Filter] = {
    GoalEventType.CONTACT_UPDATED: _contact_updated,
    GoalEventType.CONTACT_ADDED_TO_LIST: lambda c, e: e.list_id in c.list_ids,
    GoalEventType.WEBSITE_PAGE_VISITED: _page_visited,
    GoalEventType.FORM_SUBMITTED: lambda c, e: e.form_id in c.form_ids,
    GoalEventType.ORDER_PLACED: _order,
    GoalEventType.ORDER_UPDATED: _order,
}
for _message_event in MESSAGE_EVENT_CHANNEL:
    _FILTERS[_message_event] = lambda c, e: e.message_id in c.message_ids


def criterion_meets(criterion: Criterion, event: GoalEvent) -> bool:
    """Whether the goal event is of the criterion's type and passes its filter."""
    if criterion.event_type != event.event_type:
        return False
    return _FILTERS[event.event_type](criterion, event)


def criterion_at(history: Iterable[CriterionChange], when: datetime) -> Criterion | None:
    """The last change effective at or before `when` (later in the history wins a tie)."""
    best: tuple[datetime, int, Criterion | None] | None = None
    for position, change in enumerate(history):
        effective = _DAWN if change.effective_time is None else change.effective_time
        if effective <= when and (best is None or (effective, position) >= best[:2]):
            best = (effective, position, change.criterion)
    return None if best is None else best[2]


def is_active(enrollment: Enrollment, when: datetime) -> bool:
    """Entered at or before `when`, and not exited before it."""
    if enrollment.enter_time > when:
        return False
    return enrollment.exit_time is None or not enrollment.exit_time < when


def touchpoint_qualifies(rules: JourneyRules, touchpoint: Touchpoint, when: datetime) -> bool:
    """A touchpoint of this journey in [when - window, when], not an excluded machine open."""
    if touchpoint.journey_id != rules.journey_id:
        return False
    if touchpoint.occur_time > when or touchpoint.occur_time < when - rules.window:
        return False
    machine_open = touchpoint.machine_generated and touchpoint.action == Action.OPENED
    return not (machine_open and rules.exclude_machine_opens)


class _Credit(NamedTuple):
    journey_id: str
    enrollment: Enrollment
    touchpoint: Touchpoint


def _latest_first(when: datetime) -> timedelta:
    """A sort key that puts later times first (timedelta negation is exact)."""
    return -(when - _EPOCH)


def _credit(
    rules: JourneyRules,
    contact_id: str,
    when: datetime,
    enrollments: set[Enrollment],
    touchpoints: set[Touchpoint],
) -> _Credit | None:
    """The enrollment and touchpoint a journey would be credited with at `when`, if eligible."""
    active = [
        e
        for e in enrollments
        if e.contact_id == contact_id
        and e.journey_id == rules.journey_id
        and not e.holdout
        and is_active(e, when)
    ]
    touches = [
        t
        for t in touchpoints
        if t.contact_id == contact_id and touchpoint_qualifies(rules, t, when)
    ]
    if not active or not touches:
        return None
    enrollment = min(active, key=lambda e: (_latest_first(e.enter_time), e.enrollment_id))
    touchpoint = min(touches, key=lambda t: (_latest_first(t.occur_time), t.event_id))
    return _Credit(rules.journey_id, enrollment, touchpoint)


def credited_value(event: GoalEvent, goal_events: Iterable[GoalEvent]) -> Money | None:
    """The event's value, or that of its latest amendment (of the same contact, at or after
    it; latest by time, then event id)."""
    amendments = [
        a
        for a in goal_events
        if a.amends_event_id == event.event_id
        and a.contact_id == event.contact_id
        and a.occur_time >= event.occur_time
    ]
    if not amendments:
        return event.value
    return max(amendments, key=lambda a: (a.occur_time, a.event_id)).value


def run_model(
    journeys: Iterable[JourneyRules],
    enrollments: Iterable[Enrollment],
    touchpoints: Iterable[Touchpoint],
    goal_events: Iterable[GoalEvent],
    *,
    marks: Iterable[StepMark] = (),
    converted_before: Iterable[str] = (),
    awarded_before: Iterable[tuple[str, str]] = (),
) -> ModelResult:
    """Every goal event's outcome and every award, for any number of contacts.

    `converted_before` / `awarded_before` are enrollments already converted and award keys
    already awarded by earlier events that are not passed in; they earn nothing again.
    """
    all_journeys = sorted(set(journeys), key=lambda j: j.journey_id)
    all_enrollments = set(enrollments)
    all_touchpoints = set(touchpoints)
    already_awarded = set(awarded_before)
    converted = set(converted_before)
    outcomes: dict[str, ModelOutcome] = {}
    awards: dict[tuple[str, str], ModelAward] = {}
    earned: list[tuple[tuple[str, str], ModelAward]] = []  # named conversions, before the min

    all_goal_events = set(goal_events)
    for event in sorted(all_goal_events, key=lambda e: (e.occur_time, e.event_id)):
        when, contact = event.occur_time, event.contact_id
        qualified: list[_Credit] = []
        for rules in all_journeys:
            goal = criterion_at(rules.goal_history, when)
            if goal is None or not criterion_meets(goal, event):
                continue
            credit = _credit(rules, contact, when, all_enrollments, all_touchpoints)
            if credit is not None:
                qualified.append(credit)
        if not qualified:
            outcomes[event.event_id] = ModelOutcome(OutcomeStatus.NOT_CONVERTED)
        else:
            winner = min(
                qualified, key=lambda q: (_latest_first(q.touchpoint.occur_time), q.journey_id)
            )
            enrollment_id = winner.enrollment.enrollment_id
            repeat = enrollment_id in converted
            outcomes[event.event_id] = ModelOutcome(
                OutcomeStatus.REPEAT if repeat else OutcomeStatus.CONVERTED,
                winner.journey_id,
                enrollment_id,
                winner.touchpoint.event_id,
            )
            converted.add(enrollment_id)
            if not repeat and (enrollment_id, GOAL_CONVERSION) not in already_awarded:
                awards[enrollment_id, GOAL_CONVERSION] = ModelAward(
                    AwardSource.ATTRIBUTION,
                    event.event_id,
                    winner.touchpoint.event_id,
                    when,
                    value=credited_value(event, all_goal_events),
                )

        for rules in all_journeys:
            for conversion in rules.conversions:
                trigger = criterion_at(conversion.trigger_history, when)
                if trigger is None or not criterion_meets(trigger, event):
                    continue
                credit = _credit(rules, contact, when, all_enrollments, all_touchpoints)
                if credit is None:
                    continue
                key = (credit.enrollment.enrollment_id, conversion.conversion_id)
                award = ModelAward(
                    AwardSource.TRIGGER,
                    event.event_id,
                    credit.touchpoint.event_id,
                    when,
                    value=conversion.value,
                )
                earned.append((key, award))

    journey_of = {e.enrollment_id: e.journey_id for e in all_enrollments}
    values = {(j.journey_id, c.conversion_id): c.value for j in all_journeys for c in j.conversions}
    for mark in set(marks):
        value = values.get((journey_of.get(mark.enrollment_id, ""), mark.conversion_id))
        award = ModelAward(mark.source, "", "", mark.mark_time, mark.step_id, value)
        earned.append(((mark.enrollment_id, mark.conversion_id), award))

    for key in {key for key, _ in earned} - already_awarded:
        awards[key] = min(
            (award for k, award in earned if k == key),
            key=lambda a: (a.award_time, _SOURCE_RANK[a.source], a.step_id, a.goal_event_id),
        )
    return ModelResult(outcomes, awards)
