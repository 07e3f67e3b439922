"""Property tests: `decide` agrees with the reference model, and depends only on the event set.

Example counts come from tests/hypothesis_profiles.py (HYPOTHESIS_PROFILE=thorough for more).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from hypothesis import given, note
from hypothesis import strategies as st

from journey_conversions.attribution import amended_values, decide
from journey_conversions.domain import GOAL_CONVERSION, ContactHistory, Decision
from tests.unit.strategies import World, as_model, award_is_consistent, worlds


def _decide_all(
    world: World,
    converted_before: frozenset[str] = frozenset(),
    awarded_before: frozenset[tuple[str, str]] = frozenset(),
) -> Decision:
    """`decide` for every contact of the world, merged (ids are unique across contacts)."""
    merged = Decision()
    for contact_id in world.contacts:
        history = world.history(
            contact_id, converted_before=converted_before, awarded_before=awarded_before
        )
        decision = decide(history)
        merged.outcomes.update(decision.outcomes)
        merged.awards.update(decision.awards)
    return merged


def _show(world: World) -> None:
    note(f"journeys={world.journeys!r}")
    note(f"enrollments={world.enrollments!r}")
    note(f"touchpoints={world.touchpoints!r}")
    note(f"goal_events={world.goal_events!r}")
    note(f"marks={world.marks!r}")


class TestDecideAgreesWithModel:
    """On random histories, `decide` gives the reference model's outcomes and awards."""

    @given(worlds())
    def test_outcomes_and_awards_equal_the_models(self, world: World) -> None:
        _show(world)
        decision = _decide_all(world)
        expected = world.model()
        got = as_model(decision)
        assert got.outcomes == expected.outcomes
        assert got.awards == expected.awards
        assert all(award_is_consistent(a, world) for a in decision.awards.values())
        assert all(k == a.key for k, a in decision.awards.items())

    @given(worlds(), st.data())
    def test_state_from_before_since_is_respected(self, world: World, data: st.DataObject) -> None:
        _show(world)
        enrollment_ids = sorted(e.enrollment_id for e in world.enrollments)
        named = sorted(
            (e.enrollment_id, c.conversion_id)
            for e in world.enrollments
            for c in world.journeys[e.journey_id].conversions
        )
        converted = frozenset(data.draw(st.sets(st.sampled_from(enrollment_ids))))
        awarded = frozenset(data.draw(st.sets(st.sampled_from(named)) if named else st.just(())))
        awarded |= {(e, GOAL_CONVERSION) for e in converted}
        note(f"converted_before={sorted(converted)} awarded_before={sorted(awarded)}")
        decision = _decide_all(world, converted_before=converted, awarded_before=awarded)
        expected = world.model(converted_before=converted, awarded_before=awarded)
        got = as_model(decision)
        assert got.outcomes == expected.outcomes
        assert got.awards == expected.awards


class TestOnlyTheEventSetMatters:
    """The result depends on the set of events, never on their order or repetition."""

    @given(worlds(contacts=1), st.data())
    def test_duplicated_enrollments_touchpoints_and_marks_give_the_same_decision(
        self, world: World, data: st.DataObject
    ) -> None:
        _show(world)
        history = world.history(world.contacts[0])

        def scrambled(items: tuple[Any, ...]) -> tuple[Any, ...]:
            repeated = data.draw(st.lists(st.sampled_from(items), max_size=3)) if items else []
            return tuple(data.draw(st.permutations([*items, *repeated])))

        again = ContactHistory(
            contact_id=history.contact_id,
            journeys=history.journeys,
            enrollments=scrambled(history.enrollments),
            touchpoints=scrambled(history.touchpoints),
            goal_events=history.goal_events,
            marks=scrambled(history.marks),
        )
        assert decide(again) == decide(history)

    @given(worlds(contacts=1), st.data())
    def test_duplicated_goal_events_give_the_same_decision(
        self, world: World, data: st.DataObject
    ) -> None:
        """A goal event passed twice is still one event: its own conversion is no repeat."""
        _show(world)
        history = world.history(world.contacts[0])
        events = history.goal_events
        repeated = data.draw(st.lists(st.sampled_from(events), max_size=3)) if events else []
        again = ContactHistory(
            contact_id=history.contact_id,
            journeys=history.journeys,
            enrollments=history.enrollments,
            touchpoints=history.touchpoints,
            goal_events=(*events, *repeated),
            marks=history.marks,
        )
        assert decide(again) == decide(history)

    @given(worlds(contacts=1), st.data())
    def test_shuffled_inputs_give_the_same_decision(
        self, world: World, data: st.DataObject
    ) -> None:
        _show(world)
        history = world.history(world.contacts[0])

        def shuffled(items: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(data.draw(st.permutations(items)))

        again = ContactHistory(
            contact_id=history.contact_id,
            journeys=dict(reversed(list(history.journeys.items()))),
            enrollments=shuffled(history.enrollments),
            touchpoints=shuffled(history.touchpoints),
            goal_events=shuffled(history.goal_events),
            marks=shuffled(history.marks),
        )
        assert decide(again) == decide(history)


class TestSplittingBySince:
    """Deciding the events before `since`, then the rest with the state they left, is the same
    as deciding everything at once."""

    @given(worlds(contacts=1), st.data())
    def test_split_at_since_gives_the_same_results(self, world: World, data: st.DataObject) -> None:
        _show(world)
        contact_id = world.contacts[0]
        times = sorted(
            {g.occur_time for g in world.goal_events} | {m.mark_time for m in world.marks}
        )
        since: datetime = data.draw(
            st.sampled_from(times) if times else st.just(world.enrollments[0].enter_time)
        )
        note(f"since={since}")
        whole = decide(world.history(contact_id))
        early = decide(world.history(contact_id, until=since))
        converted = frozenset(e for e, c in early.awards if c == GOAL_CONVERSION)
        late = decide(
            world.history(
                contact_id,
                since=since,
                converted_before=converted,
                awarded_before=frozenset(early.awards),
            )
        )
        for event in world.goal_events:
            split = early if event.occur_time < since else late
            assert split.outcomes[event.event_id] == whole.outcomes[event.event_id]
        # Amendments from `since` on reach the final conversions before it by their value
        # alone, as the store applies them (store/amendments.py).
        amended = amended_values(world.goal_events)
        final = {
            key: replace(award, value=amended[award.goal_event_id])
            if key[1] == GOAL_CONVERSION and award.goal_event_id in amended
            else award
            for key, award in early.awards.items()
        }
        assert final | late.awards == whole.awards
        assert not set(early.awards) & set(late.awards)
