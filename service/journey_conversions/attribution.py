"""The attribution rule as one pure function of a contact's history.

`decide` returns every goal event's outcome and every award the history earns. It has no I/O
and no clock, so the result depends only on the set of events, never on their arrival order:
the store re-runs it for a contact whenever an event that can change the result arrives, and
writes the differences.

Deterministic tie-breaks (documented in the README):
- goal events are decided in (occur_time, event_id) order;
- within a journey the credited touchpoint is the latest qualifying one at or before the goal
  event, the smallest event_id among equal times;
- between journeys the latest credited touchpoint wins, the smallest journey_id among equal
  times;
- within the winning journey the enrollment credited is the active one that entered last, the
  smallest enrollment_id among equal times;
- a named conversion earned several ways keeps its earliest award (step marks before triggers
  at equal times);
- holdout enrollments are never credited, but they do meet the goal (`Decision.goal_met`), which
  is what the report's holdout lift compares.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from journey_conversions.credit import Shares, split
from journey_conversions.criteria import in_force, matches
from journey_conversions.domain import (
    GOAL_CONVERSION,
    Action,
    Award,
    AwardSource,
    Candidate,
    ContactHistory,
    ConversionRule,
    Decision,
    Enrollment,
    GoalEvent,
    JourneyRules,
    Money,
    Outcome,
    OutcomeStatus,
    Touchpoint,
    Verdict,
)


@dataclass(frozen=True, slots=True)
class _Eligibility:
    enrollment: Enrollment | None
    touchpoint: Touchpoint | None


class _JourneyView:
    """One journey's enrollments and qualifying touchpoints of the contact, indexed by time."""

    def __init__(
        self, rules: JourneyRules, enrollments: list[Enrollment], touchpoints: list[Touchpoint]
    ) -> None:
        self.rules = rules
        self.enrollments = enrollments
        # A set of events: a touchpoint passed twice is one (credit splits count each once).
        unique = {t.event_id: t for t in touchpoints if _qualifies(rules, t)}
        qualifying = sorted(unique.values(), key=lambda t: (t.occur_time, t.event_id))
        self.touchpoints = qualifying
        self.times = [t.occur_time for t in qualifying]

    def active_enrollment(self, when: datetime) -> Enrollment | None:
        """The enrollment a conversion at `when` is credited to; holdout enrollments (a control
        group, sent nothing) never are."""
        active = [e for e in self.enrollments if not e.holdout and e.active_at(when)]
        if not active:
            return None
        latest = max(e.enter_time for e in active)
        return min((e for e in active if e.enter_time == latest), key=lambda e: e.enrollment_id)

    def last_touch(self, when: datetime) -> Touchpoint | None:
        """The latest qualifying touchpoint in [when - window, when]."""
        end = bisect.bisect_right(self.times, when)
        if end == 0:
            return None
        latest = self.times[end - 1]
        if latest < when - self.rules.window:
            return None
        # Among touchpoints at the same instant, the smallest event_id (sorted first).
        return self.touchpoints[bisect.bisect_left(self.times, latest)]

    def in_window(self, when: datetime) -> list[Touchpoint]:
        """The qualifying touchpoints in [when - window, when], in (time, event id) order."""
        begin = bisect.bisect_left(self.times, when - self.rules.window)
        return self.touchpoints[begin : bisect.bisect_right(self.times, when)]

    def eligibility(self, when: datetime) -> _Eligibility:
        return _Eligibility(self.active_enrollment(when), self.last_touch(when))


def _qualifies(rules: JourneyRules, touchpoint: Touchpoint) -> bool:
    machine_open = touchpoint.machine_generated and touchpoint.action == Action.OPENED
    return not (machine_open and rules.exclude_machine_opens)


def _views(history: ContactHistory) -> dict[str, _JourneyView]:
    enrollments: dict[str, list[Enrollment]] = defaultdict(list)
    touchpoints: dict[str, list[Touchpoint]] = defaultdict(list)
    for enrollment in history.enrollments:
        enrollments[enrollment.journey_id].append(enrollment)
    for touchpoint in history.touchpoints:
        touchpoints[touchpoint.journey_id].append(touchpoint)
    return {
        journey_id: _JourneyView(rules, enrollments[journey_id], touchpoints[journey_id])
        for journey_id, rules in sorted(history.journeys.items())
    }


def _winner(qualified: list[tuple[str, _Eligibility]]) -> tuple[str, _Eligibility]:
    latest = max(e.touchpoint.occur_time for _, e in qualified if e.touchpoint)
    return min(
        ((j, e) for j, e in qualified if e.touchpoint and e.touchpoint.occur_time == latest),
        key=lambda pair: pair[0],
    )


def _goal_matches(view: _JourneyView, event: GoalEvent) -> bool:
    goal = in_force(view.rules.goal_history, event.occur_time)
    return goal is not None and matches(goal, event)


def _attribute(
    event: GoalEvent,
    views: dict[str, _JourneyView],
    matching: set[str],
    enrolled_journeys: set[str],
) -> tuple[list[Candidate], tuple[str, _Eligibility] | None]:
    """The candidates of one goal event with their verdicts, and the winner if any;
    `matching` are the journeys whose goal in force the event matches."""
    verdicts: dict[str, Candidate] = {}
    qualified: list[tuple[str, _Eligibility]] = []
    for journey_id, view in views.items():
        if journey_id not in matching:
            if journey_id in enrolled_journeys:
                verdicts[journey_id] = Candidate(journey_id, Verdict.GOAL_MISMATCH)
            continue
        eligibility = view.eligibility(event.occur_time)
        if eligibility.enrollment is None:
            verdicts[journey_id] = Candidate(
                journey_id, Verdict.NOT_ACTIVE, touchpoint=eligibility.touchpoint
            )
        elif eligibility.touchpoint is None:
            verdicts[journey_id] = Candidate(
                journey_id,
                Verdict.NO_TOUCHPOINT_IN_WINDOW,
                enrollment_id=eligibility.enrollment.enrollment_id,
            )
        else:
            qualified.append((journey_id, eligibility))
    winner = _winner(qualified) if qualified else None
    for journey_id, eligibility in qualified:
        assert eligibility.enrollment is not None
        won = winner is not None and journey_id == winner[0]
        verdicts[journey_id] = Candidate(
            journey_id,
            Verdict.WON if won else Verdict.BEATEN,
            touchpoint=eligibility.touchpoint,
            enrollment_id=eligibility.enrollment.enrollment_id,
            beaten_by_journey_id="" if won or winner is None else winner[0],
        )
    return [verdicts[j] for j in sorted(verdicts)], winner


_SOURCE_ORDER = {
    AwardSource.CONVERT_STEP: 0,
    AwardSource.EVALUATE_GOAL_STEP: 1,
    AwardSource.TRIGGER: 2,
}


def _named_award_order(award: Award) -> tuple[datetime, int, str, str]:
    return (
        award.award_time,
        _SOURCE_ORDER.get(award.source, 3),
        award.step_id,
        award.goal_event_id,
    )


def decide(history: ContactHistory) -> Decision:
    """Every goal event's outcome and every award earned by one contact's history."""
    views = _views(history)
    enrollments = {e.enrollment_id: e for e in history.enrollments}
    enrolled_journeys = {e.journey_id for e in history.enrollments}
    converted = set(history.converted_before)
    outcomes: dict[str, Outcome] = {}
    awards: dict[tuple[str, str], Award] = {}
    named: dict[tuple[str, str], list[Award]] = defaultdict(list)
    goal_met: dict[str, datetime] = {}
    credits: dict[str, dict[str, Shares]] = {}

    # A set of events: an event id seen twice is one event (the store never repeats one).
    unique_events = {e.event_id: e for e in history.goal_events}.values()
    amended = amended_values(unique_events)
    for event in sorted(unique_events, key=lambda e: (e.occur_time, e.event_id)):
        matching = {j for j, view in views.items() if _goal_matches(view, event)}
        for member in history.enrollments:  # holdout ones too: the lift compares them
            if member.journey_id in matching and member.active_at(event.occur_time):
                goal_met.setdefault(member.enrollment_id, event.occur_time)
        candidates, winner = _attribute(event, views, matching, enrolled_journeys)
        if winner is None:
            outcomes[event.event_id] = Outcome(
                event.event_id, OutcomeStatus.NOT_CONVERTED, candidates=tuple(candidates)
            )
        else:
            journey_id, eligibility = winner
            enrollment, touchpoint = eligibility.enrollment, eligibility.touchpoint
            assert enrollment is not None and touchpoint is not None
            repeat = enrollment.enrollment_id in converted
            outcomes[event.event_id] = Outcome(
                event.event_id,
                OutcomeStatus.REPEAT if repeat else OutcomeStatus.CONVERTED,
                journey_id=journey_id,
                enrollment_id=enrollment.enrollment_id,
                touchpoint=touchpoint,
                candidates=tuple(candidates),
            )
            if not repeat:
                converted.add(enrollment.enrollment_id)
                value = amended.get(event.event_id, event.value)
                award = _event_award(event, enrollment, touchpoint, GOAL_CONVERSION, value)
                awards[award.key] = award
                credits[award.enrollment_id] = split(views[journey_id].in_window(event.occur_time))
        for award in _trigger_awards(event, views):
            named[award.key].append(award)

    for mark in history.marks:
        enrollment = enrollments.get(mark.enrollment_id)
        if enrollment is None:
            continue
        rule = _conversion_rule(history.journeys.get(enrollment.journey_id), mark.conversion_id)
        award = Award(
            contact_id=enrollment.contact_id,
            journey_id=enrollment.journey_id,
            enrollment_id=enrollment.enrollment_id,
            version=enrollment.version,
            conversion_id=mark.conversion_id,
            source=mark.source,
            award_time=mark.mark_time,
            step_id=mark.step_id,
            value=rule.value if rule else None,
        )
        named[award.key].append(award)

    for key, earned in named.items():
        if key not in history.awarded_before:
            awards[key] = min(earned, key=_named_award_order)
    return Decision(outcomes=outcomes, awards=awards, goal_met=goal_met, credits=credits)


def amended_values(events: Iterable[GoalEvent]) -> dict[str, Money | None]:
    """The value that amendments give goal events: per amended event id, the value of its
    latest amendment (by time, then event id) of the same contact at or after it."""
    by_id = {e.event_id: e for e in events}
    latest: dict[str, GoalEvent] = {}
    for amendment in by_id.values():
        target = by_id.get(amendment.amends_event_id)
        if (
            target is None
            or target.contact_id != amendment.contact_id
            or amendment.occur_time < target.occur_time
        ):
            continue
        current = latest.get(target.event_id)
        if current is None or (current.occur_time, current.event_id) < (
            amendment.occur_time,
            amendment.event_id,
        ):
            latest[target.event_id] = amendment
    return {target: amendment.value for target, amendment in latest.items()}


def _event_award(
    event: GoalEvent,
    enrollment: Enrollment,
    touchpoint: Touchpoint,
    conversion_id: str,
    value: Money | None,
) -> Award:
    return Award(
        contact_id=enrollment.contact_id,
        journey_id=enrollment.journey_id,
        enrollment_id=enrollment.enrollment_id,
        version=enrollment.version,
        conversion_id=conversion_id,
        source=AwardSource.ATTRIBUTION if conversion_id == GOAL_CONVERSION else AwardSource.TRIGGER,
        award_time=event.occur_time,
        goal_event_id=event.event_id,
        touchpoint_event_id=touchpoint.event_id,
        message_id=touchpoint.message_id,
        value=value,
        touchpoint_time=touchpoint.occur_time,
    )


def _trigger_awards(event: GoalEvent, views: dict[str, _JourneyView]) -> list[Award]:
    """Named conversions whose trigger the event matches, in every eligible journey."""
    earned: list[Award] = []
    for view in views.values():
        triggered = [
            rule
            for rule in view.rules.conversions
            if (trigger := in_force(rule.trigger_history, event.occur_time)) is not None
            and matches(trigger, event)
        ]
        if not triggered:
            continue
        eligibility = view.eligibility(event.occur_time)
        if eligibility.enrollment is None or eligibility.touchpoint is None:
            continue
        for rule in triggered:
            earned.append(
                _event_award(
                    event,
                    eligibility.enrollment,
                    eligibility.touchpoint,
                    rule.conversion_id,
                    rule.value,
                )
            )
    return earned


def _conversion_rule(rules: JourneyRules | None, conversion_id: str) -> ConversionRule | None:
    if rules is None:
        return None
    return next((r for r in rules.conversions if r.conversion_id == conversion_id), None)
