"""The attribution and award rules of DOMAIN.md, one small example each.

All times are days after a fixed start; every journey's goal is "order placed" unless a test
says otherwise, and every touchpoint is an email click unless it says otherwise.
"""

from __future__ import annotations

from datetime import timedelta

from journey_conversions.domain import (
    GOAL_CONVERSION,
    Action,
    AwardSource,
    ConversionRule,
    Criterion,
    CriterionChange,
    GoalEventType,
    Money,
    OutcomeStatus,
    Verdict,
)
from tests.unit.histories import (
    ORDER,
    always,
    credited,
    day,
    enrolled,
    journey,
    mark,
    order,
    run,
    signup,
    touch,
)

CONVERTED = OutcomeStatus.CONVERTED
REPEAT = OutcomeStatus.REPEAT
NOT_CONVERTED = OutcomeStatus.NOT_CONVERTED
SIGNUP = Criterion(GoalEventType.FORM_SUBMITTED, form_ids=frozenset({"signup"}))
EUR_10 = Money("EUR", 10_000_000)


class TestCandidates:
    """Only journeys whose goal in force at the event's time matches it are candidates."""

    def test_event_matching_the_goal_converts(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g1", day(2))],
        )
        assert credited(decision.outcomes["g1"]) == (CONVERTED, "A", "e1", "t1")

    def test_event_not_matching_the_goal_does_not_convert(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [signup("g1", day(2))],
        )
        assert decision.outcomes["g1"].status == NOT_CONVERTED
        assert [c.verdict for c in decision.outcomes["g1"].candidates] == [Verdict.GOAL_MISMATCH]
        assert decision.awards == {}

    def test_journey_without_goal_never_converts(self) -> None:
        decision = run(
            [journey("A", goal=None)],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g1", day(2))],
        )
        assert decision.outcomes["g1"].status == NOT_CONVERTED

    def test_goal_change_is_not_retroactive(self) -> None:
        # The goal was "signup" until day 10, "order placed" from then on.
        changed = (CriterionChange(None, SIGNUP), CriterionChange(day(10), ORDER))
        decision = run(
            [journey("A", goal_history=changed)],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g-order-5", day(5)), order("g-order-10", day(10)), signup("g-signup", day(12))],
        )
        assert decision.outcomes["g-order-5"].status == NOT_CONVERTED  # the old goal applied
        assert decision.outcomes["g-order-10"].status == CONVERTED
        assert decision.outcomes["g-signup"].status == NOT_CONVERTED  # no longer the goal

    def test_goal_removed_stops_conversions(self) -> None:
        removed = (CriterionChange(None, ORDER), CriterionChange(day(10), None))
        decision = run(
            [journey("A", goal_history=removed)],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g1", day(10))],
        )
        assert decision.outcomes["g1"].status == NOT_CONVERTED


class TestParticipation:
    """A contact converts only while an active participant: entered at or before the event,
    not exited before it."""

    def test_contact_who_exited_before_goal_does_not_convert(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0), exit_at=day(3))],
            [touch("t1", "A", day(1))],
            [order("g1", day(3) + timedelta(seconds=1))],
        )
        assert decision.outcomes["g1"].status == NOT_CONVERTED
        assert decision.outcomes["g1"].candidates[0].verdict == Verdict.NOT_ACTIVE

    def test_exit_at_goal_time_still_active(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0), exit_at=day(3))],
            [touch("t1", "A", day(1))],
            [order("g1", day(3))],
        )
        assert credited(decision.outcomes["g1"]) == (CONVERTED, "A", "e1", "t1")

    def test_entry_at_goal_time_is_active(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(3))],
            [touch("t1", "A", day(1))],
            [order("g1", day(3))],
        )
        assert decision.outcomes["g1"].status == CONVERTED

    def test_entry_after_goal_does_not_convert(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(3) + timedelta(seconds=1))],
            [touch("t1", "A", day(1))],
            [order("g1", day(3))],
        )
        assert decision.outcomes["g1"].status == NOT_CONVERTED

    def test_touchpoint_without_enrollment_does_not_convert(self) -> None:
        decision = run([journey("A")], [], [touch("t1", "A", day(1))], [order("g1", day(2))])
        assert decision.outcomes["g1"].status == NOT_CONVERTED
        assert decision.outcomes["g1"].candidates[0].verdict == Verdict.NOT_ACTIVE

    def test_overlapping_enrollments_credit_the_one_entered_last(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0)), enrolled("e2", "A", day(2))],
            [touch("t1", "A", day(1))],
            [order("g1", day(3))],
        )
        assert decision.outcomes["g1"].enrollment_id == "e2"

    def test_enrollments_entered_together_credit_the_smallest_id(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e2", "A", day(0)), enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g1", day(3))],
        )
        assert decision.outcomes["g1"].enrollment_id == "e1"

    def test_exited_enrollment_is_not_credited_over_an_active_one(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0)), enrolled("e2", "A", day(1), exit_at=day(2))],
            [touch("t1", "A", day(1))],
            [order("g1", day(3))],
        )
        assert decision.outcomes["g1"].enrollment_id == "e1"


class TestWindow:
    """A touchpoint qualifies when it is of the journey and in [T - window, T], inclusive."""

    def test_touchpoint_30_days_before_goal_qualifies(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g1", day(31))],
        )
        assert decision.outcomes["g1"].status == CONVERTED

    def test_touchpoint_31_days_before_goal_does_not_qualify(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g1", day(32))],
        )
        assert decision.outcomes["g1"].status == NOT_CONVERTED
        verdict = decision.outcomes["g1"].candidates[0].verdict
        assert verdict == Verdict.NO_TOUCHPOINT_IN_WINDOW

    def test_touchpoint_a_second_outside_the_window_does_not_qualify(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1) - timedelta(seconds=1))],
            [order("g1", day(31))],
        )
        assert decision.outcomes["g1"].status == NOT_CONVERTED

    def test_touchpoint_at_goal_time_qualifies(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(2))],
            [order("g1", day(2))],
        )
        assert decision.outcomes["g1"].status == CONVERTED

    def test_touchpoint_after_goal_does_not_qualify(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(2) + timedelta(seconds=1))],
            [order("g1", day(2))],
        )
        assert decision.outcomes["g1"].status == NOT_CONVERTED

    def test_journey_window_replaces_the_default(self) -> None:
        week = journey("A", window=timedelta(days=7))
        decision = run(
            [week],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g-edge", day(8)), order("g-late", day(8.5))],
        )
        assert decision.outcomes["g-edge"].status == CONVERTED
        assert decision.outcomes["g-late"].status == NOT_CONVERTED

    def test_touchpoint_before_entry_still_qualifies(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(5))],
            [touch("t1", "A", day(1))],
            [order("g1", day(6))],
        )
        assert decision.outcomes["g1"].status == CONVERTED

    def test_touchpoint_of_another_journey_does_not_qualify(self) -> None:
        decision = run(
            [journey("A"), journey("B", goal=None)],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "B", day(1))],
            [order("g1", day(2))],
        )
        assert decision.outcomes["g1"].status == NOT_CONVERTED


class TestMachineOpens:
    """Machine-generated opens are excluded from qualifying only in journeys that say so."""

    def test_machine_open_excluded_when_journey_says_so(self) -> None:
        decision = run(
            [journey("A", exclude_machine_opens=True)],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1), Action.OPENED, machine_generated=True)],
            [order("g1", day(2))],
        )
        assert decision.outcomes["g1"].status == NOT_CONVERTED

    def test_machine_open_counts_when_journey_does_not_exclude_them(self) -> None:
        decision = run(
            [journey("A", exclude_machine_opens=False)],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1), Action.OPENED, machine_generated=True)],
            [order("g1", day(2))],
        )
        assert decision.outcomes["g1"].status == CONVERTED

    def test_human_open_counts_when_machine_opens_are_excluded(self) -> None:
        decision = run(
            [journey("A", exclude_machine_opens=True)],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1), Action.OPENED)],
            [order("g1", day(2))],
        )
        assert decision.outcomes["g1"].status == CONVERTED

    def test_excluded_machine_open_does_not_hide_an_earlier_click(self) -> None:
        decision = run(
            [journey("A", exclude_machine_opens=True)],
            [enrolled("e1", "A", day(0))],
            [
                touch("t-click", "A", day(1)),
                touch("t-bot", "A", day(1.5), Action.OPENED, machine_generated=True),
            ],
            [order("g1", day(2))],
        )
        assert credited(decision.outcomes["g1"]) == (CONVERTED, "A", "e1", "t-click")


class TestSingleWinner:
    """Of several qualifying journeys, the one whose latest qualifying touchpoint is latest wins
    alone; its latest touchpoint is credited."""

    def test_two_journeys_same_goal_later_touchpoint_wins(self) -> None:
        decision = run(
            [journey("A"), journey("B")],
            [enrolled("eA", "A", day(0)), enrolled("eB", "B", day(0))],
            [touch("tA", "A", day(2)), touch("tB", "B", day(1))],
            [order("g1", day(3))],
        )
        outcome = decision.outcomes["g1"]
        assert credited(outcome) == (CONVERTED, "A", "eA", "tA")
        verdicts = {c.journey_id: (c.verdict, c.beaten_by_journey_id) for c in outcome.candidates}
        assert verdicts == {"A": (Verdict.WON, ""), "B": (Verdict.BEATEN, "A")}
        assert set(decision.awards) == {("eA", GOAL_CONVERSION)}

    def test_equal_touchpoint_times_smallest_journey_id_wins(self) -> None:
        decision = run(
            [journey("B"), journey("A")],
            [enrolled("eB", "B", day(0)), enrolled("eA", "A", day(0))],
            [touch("tB", "B", day(1)), touch("tA", "A", day(1))],
            [order("g1", day(3))],
        )
        assert credited(decision.outcomes["g1"]) == (CONVERTED, "A", "eA", "tA")

    def test_latest_touchpoint_of_the_journey_is_credited(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t-early", "A", day(1)), touch("t-late", "A", day(2))],
            [order("g1", day(3))],
        )
        assert decision.outcomes["g1"].touchpoint is not None
        assert decision.outcomes["g1"].touchpoint.event_id == "t-late"

    def test_simultaneous_touchpoints_credit_the_smallest_event_id(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t2", "A", day(1)), touch("t1", "A", day(1))],
            [order("g1", day(3))],
        )
        assert credited(decision.outcomes["g1"]) == (CONVERTED, "A", "e1", "t1")

    def test_later_touchpoint_of_a_journey_the_contact_left_does_not_win(self) -> None:
        decision = run(
            [journey("A"), journey("B")],
            [enrolled("eA", "A", day(0), exit_at=day(2)), enrolled("eB", "B", day(0))],
            [touch("tA", "A", day(2)), touch("tB", "B", day(1))],
            [order("g1", day(3))],
        )
        assert credited(decision.outcomes["g1"]) == (CONVERTED, "B", "eB", "tB")

    def test_journey_with_another_goal_does_not_compete(self) -> None:
        decision = run(
            [journey("A"), journey("B", goal=SIGNUP)],
            [enrolled("eA", "A", day(0)), enrolled("eB", "B", day(0))],
            [touch("tA", "A", day(1)), touch("tB", "B", day(2))],
            [order("g1", day(3))],
        )
        assert credited(decision.outcomes["g1"]) == (CONVERTED, "A", "eA", "tA")


class TestRepeats:
    """An enrollment converts at most once on its goal; its later winning events are repeats."""

    def test_second_winning_goal_event_is_a_repeat(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g1", day(2)), order("g2", day(3))],
        )
        assert credited(decision.outcomes["g1"]) == (CONVERTED, "A", "e1", "t1")
        assert credited(decision.outcomes["g2"]) == (REPEAT, "A", "e1", "t1")
        assert decision.awards[("e1", GOAL_CONVERSION)].goal_event_id == "g1"
        assert len(decision.awards) == 1

    def test_simultaneous_goal_events_convert_in_event_id_order(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g2", day(2)), order("g1", day(2))],
        )
        assert decision.outcomes["g1"].status == CONVERTED
        assert decision.outcomes["g2"].status == REPEAT

    def test_reentry_converts_again(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0), exit_at=day(4)), enrolled("e2", "A", day(5))],
            [touch("t1", "A", day(1))],
            [order("g1", day(2)), order("g2", day(6))],
        )
        assert credited(decision.outcomes["g1"]) == (CONVERTED, "A", "e1", "t1")
        assert credited(decision.outcomes["g2"]) == (CONVERTED, "A", "e2", "t1")

    def test_enrollment_converted_before_since_only_repeats(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g2", day(3))],
            converted_before=["e1"],
            awarded_before=[("e1", GOAL_CONVERSION)],
        )
        assert decision.outcomes["g2"].status == REPEAT
        assert decision.awards == {}

    def test_duplicate_goal_event_is_not_its_own_repeat(self) -> None:
        # The same event passed twice is one event (results depend on the set of events).
        once = order("g1", day(2))
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [once, once],
        )
        assert decision.outcomes["g1"].status == CONVERTED


class TestLateEvents:
    """A late event re-decides what it affects; only the set of events matters."""

    JOURNEYS = (journey("A"), journey("B"))
    ENROLLMENTS = (enrolled("eA", "A", day(0)), enrolled("eB", "B", day(0)))

    def test_late_touchpoint_moves_conversion_chain(self) -> None:
        touchpoints = [touch("tA1", "A", day(9)), touch("tA2", "A", day(15))]
        events = [order("g1", day(10)), order("g2", day(20))]
        before = run(self.JOURNEYS, self.ENROLLMENTS, touchpoints, events)
        assert credited(before.outcomes["g1"]) == (CONVERTED, "A", "eA", "tA1")
        assert credited(before.outcomes["g2"]) == (REPEAT, "A", "eA", "tA2")

        # B's touch on day 9.5, reported late, takes g1 to B; eA is then free to convert on g2.
        late = touch("tB", "B", day(9.5))
        after = run(self.JOURNEYS, self.ENROLLMENTS, [*touchpoints, late], events)
        assert credited(after.outcomes["g1"]) == (CONVERTED, "B", "eB", "tB")
        assert credited(after.outcomes["g2"]) == (CONVERTED, "A", "eA", "tA2")
        assert set(after.awards) == {("eA", GOAL_CONVERSION), ("eB", GOAL_CONVERSION)}

    def test_late_exit_moves_conversion_to_the_other_journey(self) -> None:
        touchpoints = [touch("tA", "A", day(2)), touch("tB", "B", day(1))]
        events = [order("g1", day(3))]
        before = run(self.JOURNEYS, self.ENROLLMENTS, touchpoints, events)
        assert before.outcomes["g1"].journey_id == "A"

        exited = (enrolled("eA", "A", day(0), exit_at=day(2.5)), self.ENROLLMENTS[1])
        after = run(self.JOURNEYS, exited, touchpoints, events)
        assert credited(after.outcomes["g1"]) == (CONVERTED, "B", "eB", "tB")

    def test_late_earlier_goal_event_turns_a_conversion_into_a_repeat(self) -> None:
        touchpoints = [touch("tA", "A", day(1))]
        before = run(self.JOURNEYS[:1], self.ENROLLMENTS[:1], touchpoints, [order("g2", day(5))])
        assert before.outcomes["g2"].status == CONVERTED

        events = [order("g2", day(5)), order("g1", day(3))]
        after = run(self.JOURNEYS[:1], self.ENROLLMENTS[:1], touchpoints, events)
        assert after.outcomes["g1"].status == CONVERTED
        assert after.outcomes["g2"].status == REPEAT
        assert after.awards[("eA", GOAL_CONVERSION)].goal_event_id == "g1"

    def test_input_order_does_not_matter(self) -> None:
        touchpoints = [touch("tA", "A", day(2)), touch("tB", "B", day(1))]
        events = [order("g1", day(3)), order("g2", day(4))]
        forward = run(self.JOURNEYS, self.ENROLLMENTS, touchpoints, events)
        backward = run(self.JOURNEYS[::-1], self.ENROLLMENTS[::-1], touchpoints[::-1], events[::-1])
        assert forward == backward


class TestGoalAward:
    """A goal conversion is awarded to the credited enrollment at the event's time."""

    def test_goal_award_names_event_touchpoint_message_and_value(self) -> None:
        decision = run(
            [journey("A")],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [order("g1", day(2), value=EUR_10)],
        )
        award = decision.awards[("e1", GOAL_CONVERSION)]
        assert award.source == AwardSource.ATTRIBUTION
        assert (award.journey_id, award.enrollment_id, award.version) == ("A", "e1", 1)
        assert (award.goal_event_id, award.touchpoint_event_id) == ("g1", "t1")
        assert award.message_id == "A-email"
        assert award.award_time == day(2)
        assert award.value == EUR_10


def booked(trigger: Criterion | None = SIGNUP, value: Money | None = None) -> ConversionRule:
    return ConversionRule("booked", trigger_history=always(trigger), value=value)


class TestTriggers:
    """A goal event matching a conversion's trigger awards it, with the goal's eligibility."""

    def test_trigger_awards_named_conversion(self) -> None:
        decision = run(
            [journey("A", conversions=(booked(value=EUR_10),))],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [signup("g1", day(2))],
        )
        award = decision.awards[("e1", "booked")]
        assert award.source == AwardSource.TRIGGER
        assert (award.goal_event_id, award.touchpoint_event_id) == ("g1", "t1")
        assert award.award_time == day(2)
        assert award.value == EUR_10

    def test_trigger_awards_in_every_eligible_journey_not_only_the_winner(self) -> None:
        decision = run(
            [
                journey("A", goal=SIGNUP, conversions=(booked(),)),
                journey("B", goal=SIGNUP, conversions=(booked(),)),
            ],
            [enrolled("eA", "A", day(0)), enrolled("eB", "B", day(0))],
            [touch("tA", "A", day(2)), touch("tB", "B", day(1))],
            [signup("g1", day(3))],
        )
        assert decision.outcomes["g1"].journey_id == "A"
        assert {("eA", "booked"), ("eB", "booked")} <= set(decision.awards)
        assert decision.awards[("eB", "booked")].touchpoint_event_id == "tB"

    def test_trigger_awards_without_any_goal(self) -> None:
        decision = run(
            [journey("A", goal=None, conversions=(booked(),))],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [signup("g1", day(2))],
        )
        assert decision.outcomes["g1"].status == NOT_CONVERTED
        assert set(decision.awards) == {("e1", "booked")}

    def test_trigger_requires_an_active_enrollment(self) -> None:
        decision = run(
            [journey("A", conversions=(booked(),))],
            [enrolled("e1", "A", day(0), exit_at=day(1.5))],
            [touch("t1", "A", day(1))],
            [signup("g1", day(2))],
        )
        assert decision.awards == {}

    def test_trigger_requires_a_touchpoint_in_the_window(self) -> None:
        decision = run(
            [journey("A", conversions=(booked(),))],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [signup("g1", day(32))],
        )
        assert decision.awards == {}

    def test_trigger_change_is_not_retroactive(self) -> None:
        rule = ConversionRule("booked", trigger_history=(CriterionChange(day(10), SIGNUP),))
        decision = run(
            [journey("A", conversions=(rule,))],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [signup("g-before", day(5)), signup("g-after", day(10))],
        )
        assert decision.awards[("e1", "booked")].goal_event_id == "g-after"

    def test_trigger_awards_once_per_enrollment_the_earliest(self) -> None:
        decision = run(
            [journey("A", conversions=(booked(),))],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [signup("g2", day(3)), signup("g1", day(2))],
        )
        assert decision.awards[("e1", "booked")].goal_event_id == "g1"
        assert len(decision.awards) == 1

    def test_trigger_and_goal_both_awarded_by_one_event(self) -> None:
        decision = run(
            [journey("A", goal=SIGNUP, conversions=(booked(),))],
            [enrolled("e1", "A", day(0))],
            [touch("t1", "A", day(1))],
            [signup("g1", day(2))],
        )
        assert set(decision.awards) == {("e1", GOAL_CONVERSION), ("e1", "booked")}


class TestStepMarks:
    """Convert and Evaluate-goal steps award a named conversion at their time; each
    (enrollment, conversion) keeps only its earliest award."""

    JOURNEY = journey("A", conversions=(booked(value=EUR_10),))
    ENROLLMENT = enrolled("e1", "A", day(0))

    def test_convert_step_awards_the_conversion(self) -> None:
        decision = run(
            [self.JOURNEY], [self.ENROLLMENT], marks=[mark("m1", "e1", "booked", day(4))]
        )
        award = decision.awards[("e1", "booked")]
        assert (award.source, award.award_time, award.step_id) == (
            AwardSource.CONVERT_STEP,
            day(4),
            "step",
        )
        assert award.value == EUR_10

    def test_earlier_trigger_beats_later_mark(self) -> None:
        decision = run(
            [self.JOURNEY],
            [self.ENROLLMENT],
            [touch("t1", "A", day(1))],
            [signup("g1", day(2))],
            [mark("m1", "e1", "booked", day(3))],
        )
        assert decision.awards[("e1", "booked")].source == AwardSource.TRIGGER

    def test_mark_beats_trigger_at_the_same_time(self) -> None:
        decision = run(
            [self.JOURNEY],
            [self.ENROLLMENT],
            [touch("t1", "A", day(1))],
            [signup("g1", day(2))],
            [mark("m1", "e1", "booked", day(2), AwardSource.EVALUATE_GOAL_STEP)],
        )
        assert decision.awards[("e1", "booked")].source == AwardSource.EVALUATE_GOAL_STEP

    def test_convert_step_beats_evaluate_goal_step_at_the_same_time(self) -> None:
        decision = run(
            [self.JOURNEY],
            [self.ENROLLMENT],
            marks=[
                mark("m1", "e1", "booked", day(2), AwardSource.EVALUATE_GOAL_STEP, "a-step"),
                mark("m2", "e1", "booked", day(2), AwardSource.CONVERT_STEP, "z-step"),
            ],
        )
        assert decision.awards[("e1", "booked")].source == AwardSource.CONVERT_STEP

    def test_same_source_at_the_same_time_keeps_the_smallest_step(self) -> None:
        decision = run(
            [self.JOURNEY],
            [self.ENROLLMENT],
            marks=[
                mark("m1", "e1", "booked", day(2), step_id="s2"),
                mark("m2", "e1", "booked", day(2), step_id="s1"),
            ],
        )
        assert decision.awards[("e1", "booked")].step_id == "s1"

    def test_conversion_awarded_before_since_is_not_awarded_again(self) -> None:
        decision = run(
            [self.JOURNEY],
            [self.ENROLLMENT],
            [touch("t1", "A", day(1))],
            [signup("g1", day(2))],
            [mark("m1", "e1", "booked", day(3))],
            awarded_before=[("e1", "booked")],
        )
        assert decision.awards == {}
