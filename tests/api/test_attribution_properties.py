"""Attribution through the real server and Postgres equals the reference model, whatever the
delivery order, repeats and batching of the events.

Each example is a random world (journeys with goal changes, named conversions with triggers,
enrollments with exits and re-entries, touchpoints, goal events, Convert-step marks) over the
last ~25 days, delivered to a fresh tenant in a random order that respects only what the API
requires (a journey before what names it, an entry before its exit and marks, goal changes in
order), with random repeats and random batches. Afterwards every goal event's explanation and
every stored award must be the model's.

HYPOTHESIS_PROFILE=thorough runs many more examples (see tests/hypothesis_profiles.py).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from google.protobuf import timestamp_pb2
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from journeys.conversions.v1 import conversions_pb2, events_pb2, journey_pb2
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions.domain import (
    DEFAULT_ATTRIBUTION_WINDOW,
    AwardSource,
    Channel,
    Criterion,
    Enrollment,
    GoalEvent,
    JourneyMessage,
    Money,
    OutcomeStatus,
    StepMark,
    Touchpoint,
)
from tests.hypothesis_profiles import examples
from tests.reference_model import ModelAward, ModelOutcome
from tests.unit.strategies import World, worlds

if TYPE_CHECKING:
    from tests.builders import Stub

Metadata = tuple[tuple[str, str], ...]

# Whole hours, 25 days back at most (the server accepts 30) and an hour before now at least.
_NOW = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
BASE = _NOW - timedelta(days=25)

# Examples run through a real server: slow, large, and sharing the test's stub fixture.
SERVER_HEALTH_CHECKS = [
    HealthCheck.function_scoped_fixture,
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
]
VERSIONS = (1, 2)  # every journey has both, with the same messages on other steps and paths


def layout(version: int, index: int, message: JourneyMessage) -> tuple[str, str]:
    """The step and path of a journey's `index`-th message in a version: version 2 puts every
    email on one step and moves or drops paths, so reports must use the enrollment's version."""
    if version == 1:
        return message.step_id, "path-a" if index % 2 == 0 else "path-b"
    step = "step-shared" if message.channel == Channel.EMAIL else message.step_id
    return step, "path-b" if index % 2 == 0 else ""


WORLDS = worlds(
    base=BASE,
    days=24,
    first_change_untimed=True,
    max_trigger_changes=1,
    mark_sources=(AwardSource.CONVERT_STEP,),
    marks_within_enrollments=True,
)


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def money_pb(value: Money | None) -> journey_pb2.Money | None:
    if value is None:
        return None
    return journey_pb2.Money(currency_code=value.currency_code, amount_micros=value.amount_micros)


def criterion_pb(criterion: Criterion) -> journey_pb2.GoalCriterion:
    return journey_pb2.GoalCriterion(
        event_type=journey_pb2.GoalEventType.ValueType(criterion.event_type),
        attribute_name=criterion.attribute_name,
        attribute_value=criterion.attribute_value,
        list_ids=sorted(criterion.list_ids),
        message_ids=sorted(criterion.message_ids),
        url_patterns=list(criterion.url_patterns),
        form_ids=sorted(criterion.form_ids),
        product_ids=sorted(criterion.product_ids),
    )


def touchpoint_pb(t: Touchpoint) -> events_pb2.Touchpoint:
    return events_pb2.Touchpoint(
        event_id=t.event_id,
        contact_id=t.contact_id,
        journey_id=t.journey_id,
        version=t.version,
        message_id=t.message_id,
        channel=journey_pb2.Channel.ValueType(t.channel),
        action=events_pb2.TouchpointAction.ValueType(t.action),
        occur_time=ts(t.occur_time),
        machine_generated=t.machine_generated,
    )


def goal_event_pb(g: GoalEvent) -> events_pb2.GoalEvent:
    return events_pb2.GoalEvent(
        event_id=g.event_id,
        contact_id=g.contact_id,
        event_type=journey_pb2.GoalEventType.ValueType(g.event_type),
        occur_time=ts(g.occur_time),
        attribute_name=g.attribute_name,
        attribute_value=g.attribute_value,
        list_id=g.list_id,
        message_id=g.message_id,
        url=g.url,
        form_id=g.form_id,
        product_ids=sorted(g.product_ids),
        value=money_pb(g.value),
        amends_event_id=g.amends_event_id,
    )


# --- the delivery plan ----------------------------------------------------------------------

Call = Callable[["Stub", Metadata], Awaitable[None]]


@dataclass(frozen=True)
class Task:
    """One write; `after` names the tasks the API needs done first."""

    name: str
    after: tuple[str, ...]
    call: Call
    batchable: str = ""  # "touchpoints", "goal_events", "enrollments", "exits": may share a batch
    item: (
        events_pb2.Touchpoint
        | events_pb2.GoalEvent
        | events_pb2.Enrollment
        | events_pb2.EnrollmentExit
        | None
    ) = None


def _define_journey(world: World, journey_id: str, change: int) -> Call:
    rules = world.journeys[journey_id]
    goal = rules.goal_history[change].criterion if rules.goal_history else None
    journey = journey_pb2.Journey(
        journey_id=journey_id,
        exclude_machine_opens=rules.exclude_machine_opens,
        versions=[
            journey_pb2.JourneyVersion(
                version=version,
                messages=[
                    journey_pb2.JourneyMessage(
                        message_id=m.message_id,
                        channel=journey_pb2.Channel.ValueType(m.channel),
                        step_id=layout(version, index, m)[0],
                        path=layout(version, index, m)[1],
                    )
                    for index, m in enumerate(world.messages[journey_id])
                ],
            )
            for version in VERSIONS
        ],
    )
    if rules.window != DEFAULT_ATTRIBUTION_WINDOW:
        journey.attribution_window.FromTimedelta(rules.window)
    if goal is not None:
        journey.goal.CopyFrom(criterion_pb(goal))
    request = pb.DefineJourneyRequest(request_id=f"define-{journey_id}-{change}", journey=journey)
    effective = rules.goal_history[change].effective_time if rules.goal_history else None
    if effective is not None:
        request.goal_effective_time.CopyFrom(ts(effective))

    async def call(stub: Stub, md: Metadata) -> None:
        await stub.DefineJourney(request, metadata=md)

    return call


def _define_conversion(world: World, journey_id: str, index: int) -> Call:
    rule = world.journeys[journey_id].conversions[index]
    definition = conversions_pb2.ConversionDefinition(
        conversion_id=rule.conversion_id,
        journey_id=journey_id,
        name=f"Conversion {rule.conversion_id}",
        value=money_pb(rule.value),
    )
    trigger = rule.trigger_history[0].criterion if rule.trigger_history else None
    if trigger is not None:
        definition.trigger.CopyFrom(criterion_pb(trigger))
    request = pb.DefineConversionRequest(
        request_id=f"conversion-{rule.conversion_id}", conversion=definition
    )

    async def call(stub: Stub, md: Metadata) -> None:
        await stub.DefineConversion(request, metadata=md)

    return call


def enrollment_pb(e: Enrollment) -> events_pb2.Enrollment:
    return events_pb2.Enrollment(
        enrollment_id=e.enrollment_id,
        contact_id=e.contact_id,
        journey_id=e.journey_id,
        version=e.version,
        enter_time=ts(e.enter_time),
        holdout=e.holdout,
    )


def exit_pb(e: Enrollment, when: datetime) -> events_pb2.EnrollmentExit:
    return events_pb2.EnrollmentExit(
        enrollment_id=e.enrollment_id,
        exit_time=ts(when),
        exit_reason=events_pb2.EXIT_REASON_COMPLETED,
    )


def _enter(e: Enrollment) -> Call:
    request = pb.EnterJourneyRequest(enrollment=enrollment_pb(e))

    async def call(stub: Stub, md: Metadata) -> None:
        await stub.EnterJourney(request, metadata=md)

    return call


def _exit(e: Enrollment, when: datetime) -> Call:
    request = pb.ExitJourneyRequest(
        enrollment_id=e.enrollment_id,
        exit_time=ts(when),
        exit_reason=events_pb2.EXIT_REASON_COMPLETED,
    )

    async def call(stub: Stub, md: Metadata) -> None:
        await stub.ExitJourney(request, metadata=md)

    return call


def _mark(m: StepMark) -> Call:
    request = pb.MarkConversionRequest(
        event_id=m.event_id,
        enrollment_id=m.enrollment_id,
        conversion_id=m.conversion_id,
        step_id=m.step_id,
        mark_time=ts(m.mark_time),
    )

    async def call(stub: Stub, md: Metadata) -> None:
        await stub.MarkConversion(request, metadata=md)

    return call


def _one_touchpoint(item: events_pb2.Touchpoint) -> Call:
    async def call(stub: Stub, md: Metadata) -> None:
        await stub.RecordTouchpoint(pb.RecordTouchpointRequest(touchpoint=item), metadata=md)

    return call


def _one_goal_event(item: events_pb2.GoalEvent) -> Call:
    async def call(stub: Stub, md: Metadata) -> None:
        await stub.RecordGoalEvent(pb.RecordGoalEventRequest(goal_event=item), metadata=md)

    return call


def tasks_of(world: World) -> list[Task]:
    tasks: list[Task] = []
    for journey_id, rules in world.journeys.items():
        for change in range(max(1, len(rules.goal_history))):
            previous = (f"define:{journey_id}:{change - 1}",) if change else ()
            define = _define_journey(world, journey_id, change)
            tasks.append(Task(f"define:{journey_id}:{change}", previous, define))
        for index, rule in enumerate(rules.conversions):
            convert = _define_conversion(world, journey_id, index)
            defined = (f"define:{journey_id}:0",)
            tasks.append(Task(f"conversion:{rule.conversion_id}", defined, convert))
    for e in world.enrollments:
        entered = (f"enter:{e.enrollment_id}",)
        defined = (f"define:{e.journey_id}:0",)
        tasks.append(Task(entered[0], defined, _enter(e), "enrollments", enrollment_pb(e)))
        if e.exit_time is not None:
            ending = exit_pb(e, e.exit_time)
            tasks.append(
                Task(f"exit:{e.enrollment_id}", entered, _exit(e, e.exit_time), "exits", ending)
            )
    for m in world.marks:
        needs = (f"enter:{m.enrollment_id}", f"conversion:{m.conversion_id}")
        tasks.append(Task(f"mark:{m.event_id}", needs, _mark(m)))
    for t in world.touchpoints:
        touch = touchpoint_pb(t)
        call = _one_touchpoint(touch)
        tasks.append(
            Task(f"touch:{t.event_id}", (f"define:{t.journey_id}:0",), call, "touchpoints", touch)
        )
    for g in world.goal_events:  # even before the journeys and conversions they meet
        goal = goal_event_pb(g)
        tasks.append(Task(f"goal:{g.event_id}", (), _one_goal_event(goal), "goal_events", goal))
    return tasks


async def deliver(stub: Stub, md: Metadata, tasks: list[Task], data: st.DataObject) -> None:
    """Runs the tasks in a random order allowed by `after`, some twice, some batched."""
    events = [t for t in tasks if not t.name.startswith(("define:", "conversion:"))]
    repeats = (
        data.draw(st.lists(st.sampled_from(events), max_size=4), label="repeated") if events else []
    )
    pending = list(data.draw(st.permutations(tasks), label="order")) + [
        # A repeat may come before its original, or in the same batch.
        Task(f"{t.name}#again", t.after, t.call, t.batchable, t.item)
        for t in repeats
    ]
    done: set[str] = set()
    log: list[str] = []
    while pending:
        ready = [t for t in pending if all(a in done for a in t.after)]
        task = data.draw(st.sampled_from(ready))
        group = [task]
        if task.batchable:
            mates = [t for t in ready if t.batchable == task.batchable and t is not task]
            size = data.draw(st.integers(0, min(3, len(mates))))
            group += mates[:size]
        for member in group:
            pending.remove(member)
        if task.batchable and (len(group) > 1 or data.draw(st.booleans())):
            await _batch(stub, md, task.batchable, group)
            log.append(f"batch {[t.name for t in group]}")
        else:
            await task.call(stub, md)
            log.append(task.name)
        done.update(t.name for t in group)
    note(f"delivered: {log}")


async def _batch(stub: Stub, md: Metadata, kind: str, group: list[Task]) -> None:
    if kind == "touchpoints":
        touchpoints = [t.item for t in group if isinstance(t.item, events_pb2.Touchpoint)]
        response = await stub.BatchRecordTouchpoints(
            pb.BatchRecordTouchpointsRequest(touchpoints=touchpoints), metadata=md
        )
        results = list(response.results)
    elif kind == "enrollments":
        enrollments = [t.item for t in group if isinstance(t.item, events_pb2.Enrollment)]
        entered = await stub.BatchEnterJourney(
            pb.BatchEnterJourneyRequest(enrollments=enrollments), metadata=md
        )
        results = list(entered.results)
    elif kind == "exits":
        exits = [t.item for t in group if isinstance(t.item, events_pb2.EnrollmentExit)]
        exited = await stub.BatchExitJourney(pb.BatchExitJourneyRequest(exits=exits), metadata=md)
        results = list(exited.results)
    else:
        goal_events = [t.item for t in group if isinstance(t.item, events_pb2.GoalEvent)]
        goals = await stub.BatchRecordGoalEvents(
            pb.BatchRecordGoalEventsRequest(goal_events=goal_events), metadata=md
        )
        results = list(goals.results)
    rejected = [r for r in results if r.status == events_pb2.ITEM_STATUS_REJECTED]
    assert not rejected, rejected


# --- reading back ---------------------------------------------------------------------------


async def stored_outcomes(stub: Stub, md: Metadata, world: World) -> dict[str, ModelOutcome]:
    outcomes = {}
    for g in world.goal_events:
        explained = await stub.ExplainGoalEvent(
            pb.ExplainGoalEventRequest(event_id=g.event_id), metadata=md
        )
        o = explained.explanation.outcome
        outcomes[g.event_id] = ModelOutcome(
            OutcomeStatus(o.status), o.journey_id, o.enrollment_id, o.touchpoint_event_id
        )
    return outcomes


async def stored_awards(
    stub: Stub, md: Metadata, world: World
) -> dict[tuple[str, str], ModelAward]:
    awards = {}
    for journey_id in world.journeys:
        token = ""
        while True:
            page = await stub.ListConversionAwards(
                pb.ListConversionAwardsRequest(
                    journey_id=journey_id, page_size=500, page_token=token
                ),
                metadata=md,
            )
            for a in page.awards:
                value = a.value if a.HasField("value") else None
                awards[(a.enrollment_id, a.conversion_id)] = ModelAward(
                    AwardSource(a.source),
                    a.goal_event_id,
                    a.touchpoint_event_id,
                    a.award_time.ToDatetime(tzinfo=UTC),
                    a.step_id,
                    Money(value.currency_code, value.amount_micros) if value else None,
                )
            token = page.next_page_token
            if not token:
                break
    return awards


@settings(
    max_examples=examples(15, 1000),
    deadline=None,
    suppress_health_check=SERVER_HEALTH_CHECKS,
)
@given(world=WORLDS, data=st.data())
async def test_stored_outcomes_and_awards_equal_the_models(
    stub: Stub, world: World, data: st.DataObject
) -> None:
    md: Metadata = (("x-tenant-id", f"prop-{uuid.uuid4().hex}"),)
    note(f"journeys={world.journeys!r}")
    note(f"enrollments={world.enrollments!r}")
    note(f"touchpoints={world.touchpoints!r}")
    note(f"goal_events={world.goal_events!r}")
    note(f"marks={world.marks!r}")
    await deliver(stub, md, tasks_of(world), data)
    expected = world.model()
    for status in sorted({o.status.name for o in expected.outcomes.values()}):
        event(f"some goal event {status}")
    for source in sorted({a.source.name for a in expected.awards.values()}):
        event(f"some award by {source}")
    assert await stored_outcomes(stub, md, world) == expected.outcomes
    assert await stored_awards(stub, md, world) == expected.awards
