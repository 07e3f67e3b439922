"""BatchEnterJourney and BatchExitJourney through the real server: one result per item, in
order, each what the unary call would have answered for the item alone; repeats change
nothing; and a batch leaves exactly what sending its items one by one leaves.

The tests share one server and database, each in tenants of its own (see `stub`)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import text_format, timestamp_pb2
from google.protobuf.message import Message
from journeys.conversions.v1 import conversions_pb2, events_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions.parse import MAX_BATCH
from tests.builders import (
    NOW,
    ago,
    define_journey,
    enter,
    exit_,
    field_violations,
    goal,
    goal_event,
    message,
    touchpoint,
    ts,
)
from tests.conftest import InTenant

if TYPE_CHECKING:
    from tests.builders import Stub

ACCEPTED = events_pb2.ITEM_STATUS_ACCEPTED
DUPLICATE = events_pb2.ITEM_STATUS_DUPLICATE
REJECTED = events_pb2.ITEM_STATUS_REJECTED
RETRACTED = conversions_pb2.CONVERSION_EVENT_TYPE_RETRACTED


@pytest.fixture
def stub(tenant_stub: Stub) -> Stub:
    """This module's tests share one server, each in a tenant of its own."""
    return tenant_stub


def enrollment(
    enrollment_id: str,
    contact_id: str,
    journey_id: str,
    at: timestamp_pb2.Timestamp,
    version: int = 1,
    holdout: bool = False,
) -> events_pb2.Enrollment:
    return enter(enrollment_id, contact_id, journey_id, at, version, holdout).enrollment


def ending(
    enrollment_id: str,
    at: timestamp_pb2.Timestamp,
    reason: events_pb2.ExitReason.ValueType = events_pb2.EXIT_REASON_COMPLETED,
) -> events_pb2.EnrollmentExit:
    return events_pb2.EnrollmentExit(enrollment_id=enrollment_id, exit_time=at, exit_reason=reason)


async def enter_all(stub: Stub, *items: events_pb2.Enrollment) -> list[events_pb2.ItemResult]:
    return list(
        (await stub.BatchEnterJourney(pb.BatchEnterJourneyRequest(enrollments=items))).results
    )


async def exit_all(stub: Stub, *items: events_pb2.EnrollmentExit) -> list[events_pb2.ItemResult]:
    return list((await stub.BatchExitJourney(pb.BatchExitJourneyRequest(exits=items))).results)


def statuses(results: Sequence[events_pb2.ItemResult]) -> list[str]:
    return [events_pb2.ItemStatus.Name(r.status).removeprefix("ITEM_STATUS_") for r in results]


def errors(results: Sequence[events_pb2.ItemResult]) -> list[tuple[str, str] | None]:
    return [(r.error.code, r.error.reason) if r.HasField("error") else None for r in results]


async def stored(stub: Stub, enrollment_id: str) -> events_pb2.Enrollment | None:
    try:
        reply = await stub.GetEnrollment(pb.GetEnrollmentRequest(enrollment_id=enrollment_id))
    except grpc.aio.AioRpcError as error:
        assert error.code() == grpc.StatusCode.NOT_FOUND
        return None
    return reply.enrollment


async def read_stream(stub: Stub) -> list[conversions_pb2.ConversionEvent]:
    """Every conversion event of the tenant (a caught-up stream ends at the deadline)."""
    events: list[conversions_pb2.ConversionEvent] = []
    call = stub.StreamConversionEvents(pb.StreamConversionEventsRequest(), timeout=1.0)
    try:
        async for item in call:
            events.append(item.event)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    return events


async def awards(stub: Stub, journey_id: str) -> list[conversions_pb2.ConversionAward]:
    reply = await stub.ListConversionAwards(
        pb.ListConversionAwardsRequest(journey_id=journey_id, page_size=500)
    )
    assert not reply.next_page_token
    return list(reply.awards)


@pytest.fixture
async def welcome(stub: Stub) -> None:
    """Journey "welcome" with versions 1 and 2, an email each."""
    await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
    await stub.DefineJourney(define_journey("welcome", [message("email-1")], version=2))


@pytest.mark.usefixtures("welcome")
class TestBatchEnterJourney:
    async def test_every_entry_is_accepted_and_stored_as_sent(self, stub: Stub) -> None:
        items = [
            enrollment(f"e{n}", f"c{n % 3}", "welcome", ago(days=5, hours=n), 1 + n % 2, n == 4)
            for n in range(6)
        ]
        results = await enter_all(stub, *items)
        assert [(r.index, r.event_id) for r in results] == [
            (n, e.enrollment_id) for n, e in enumerate(items)
        ]
        assert statuses(results) == ["ACCEPTED"] * 6
        assert [r.HasField("error") for r in results] == [False] * 6
        for item in items:
            assert await stored(stub, item.enrollment_id) == item
        report = (
            await stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="welcome"))
        ).report
        assert (report.entered, report.active, report.exited) == (5, 5, 0)  # 1 holdout

    async def test_the_same_batch_again_is_duplicate_and_changes_nothing(self, stub: Stub) -> None:
        items = [enrollment(f"e{n}", f"c{n}", "welcome", ago(days=2, hours=n)) for n in range(4)]
        assert statuses(await enter_all(stub, *items)) == ["ACCEPTED"] * 4
        await stub.ExitJourney(exit_("e1", ago(days=1)))
        before = [await stored(stub, e.enrollment_id) for e in items]

        again = await enter_all(stub, *items)
        assert statuses(again) == ["DUPLICATE"] * 4  # the exit of e1 is not part of its entry
        assert [r.event_id for r in again] == [e.enrollment_id for e in items]
        assert [await stored(stub, e.enrollment_id) for e in items] == before

    async def test_mixed_batch_answers_each_item_as_the_unary_call_would(self, stub: Stub) -> None:
        await stub.EnterJourney(enter("old", "c9", "welcome", ago(days=9)))
        items = [
            enrollment("e1", "c1", "welcome", ago(days=3)),  # 0: new
            enrollment("e2", "c1", "nowhere", ago(days=3)),  # 1: unknown journey
            enrollment("e3", "c1", "welcome", ago(days=3), version=7),  # 2: unknown version
            events_pb2.Enrollment(enrollment_id="e4", journey_id="welcome"),  # 3: bad fields
            enrollment("e1", "c1", "welcome", ago(days=3)),  # 4: repeats item 0
            enrollment("e1", "c2", "welcome", ago(days=3)),  # 5: item 0's id, other contact
            enrollment("old", "c9", "welcome", ago(days=9)),  # 6: repeats a stored entry
            enrollment("old", "c9", "welcome", ago(days=8)),  # 7: a stored id, other time
            enrollment("e5", "c1", "nowhere", ago(days=2)),  # 8: unknown journey ...
            enrollment("e5", "c2", "welcome", ago(days=2)),  # 9: ... so this one is new
            enrollment("e6", "c3", "welcome", ago(days=1), version=2, holdout=True),  # 10: new
        ]
        results = await enter_all(stub, *items)

        assert [(r.index, r.event_id) for r in results] == [
            (n, e.enrollment_id) for n, e in enumerate(items)
        ]
        assert statuses(results) == [
            "ACCEPTED",
            "REJECTED",
            "REJECTED",
            "REJECTED",
            "DUPLICATE",
            "REJECTED",
            "DUPLICATE",
            "REJECTED",
            "REJECTED",
            "ACCEPTED",
            "ACCEPTED",
        ]
        assert errors(results) == [
            None,
            ("NOT_FOUND", "JOURNEY_NOT_FOUND"),
            ("NOT_FOUND", "VERSION_NOT_FOUND"),
            ("INVALID_ARGUMENT", "INVALID_ARGUMENT"),
            None,
            ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED"),
            None,
            ("ALREADY_EXISTS", "IDEMPOTENCY_KEY_REUSED"),
            ("NOT_FOUND", "JOURNEY_NOT_FOUND"),
            None,
            None,
        ]
        assert {v.field for v in results[3].error.field_violations} == {
            "enrollments[3].contact_id",
            "enrollments[3].version",
            "enrollments[3].enter_time",
        }
        assert all(r.error.message for r in results if r.status == REJECTED)

        assert await stored(stub, "e1") == items[0]
        assert await stored(stub, "e5") == items[9]
        assert await stored(stub, "e6") == items[10]
        assert await stored(stub, "old") == items[6]
        for absent in ("e2", "e3", "e4"):
            assert await stored(stub, absent) is None

    async def test_an_item_rejected_alone_is_rejected_in_a_batch(self, stub: Stub) -> None:
        """Item by item, the batch's rejections carry the unary call's code, reason and
        message."""
        await stub.EnterJourney(enter("old", "c9", "welcome", ago(days=9)))
        items = [
            enrollment("e2", "c1", "nowhere", ago(days=3)),
            enrollment("e3", "c1", "welcome", ago(days=3), version=7),
            enrollment("old", "c9", "welcome", ago(days=8)),
        ]
        results = await enter_all(stub, *items)
        for item, result in zip(items, results, strict=True):
            with pytest.raises(grpc.aio.AioRpcError) as alone:
                await stub.EnterJourney(pb.EnterJourneyRequest(enrollment=item))
            assert (result.error.code, result.error.message) == (
                alone.value.code().name,
                alone.value.details(),
            )

    async def test_a_full_batch_is_accepted(self, stub: Stub) -> None:
        items = [
            enrollment(f"e{n}", f"c{n % 97}", "welcome", ago(days=3, minutes=n))
            for n in range(MAX_BATCH)
        ]
        assert set(statuses(await enter_all(stub, *items))) == {"ACCEPTED"}
        report = (
            await stub.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="welcome"))
        ).report
        assert report.entered == MAX_BATCH

    async def test_concurrent_overlapping_batches_accept_each_entry_once(self, stub: Stub) -> None:
        """Batches sharing contacts and enrollment ids, sent at once: each contact's lock is
        taken in one order by every batch, so none deadlocks, and each entry is accepted by
        exactly one of them."""
        shared = [
            enrollment(f"e{n}", f"c{n % 7}", "welcome", ago(days=2, minutes=n)) for n in range(60)
        ]
        batches = [
            random.Random(seed).sample(shared, len(shared))
            + [enrollment(f"own-{seed}-{n}", f"c{n}", "welcome", ago(days=1)) for n in range(7)]
            for seed in range(4)
        ]
        answers = await asyncio.gather(*(enter_all(stub, *batch) for batch in batches))
        accepted = Counter(
            r.event_id for results in answers for r in results if r.status == ACCEPTED
        )
        duplicates = Counter(
            r.event_id for results in answers for r in results if r.status == DUPLICATE
        )
        assert accepted == Counter({e.enrollment_id: 1 for batch in batches for e in batch})
        assert duplicates == Counter({e.enrollment_id: 3 for e in shared})

    @pytest.mark.parametrize("size", [0, MAX_BATCH + 1])
    async def test_an_empty_or_oversized_batch_is_invalid_as_a_whole(
        self, stub: Stub, size: int
    ) -> None:
        items = [enrollment(f"e{n}", "c1", "welcome", ago(days=1)) for n in range(size)]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await enter_all(stub, *items)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(caught.value)) == ["enrollments"]
        assert await stored(stub, "e0") is None


@pytest.mark.usefixtures("welcome")
class TestBatchExitJourney:
    async def test_every_exit_is_accepted_and_stored(self, stub: Stub) -> None:
        await enter_all(stub, *[enrollment(f"e{n}", "c1", "welcome", ago(days=5)) for n in [0, 1]])
        exits = [
            ending("e0", ago(days=2)),
            ending("e1", ago(days=1), events_pb2.EXIT_REASON_REMOVED),
        ]
        results = await exit_all(stub, *exits)
        assert [(r.index, r.event_id, r.status) for r in results] == [
            (0, "e0", ACCEPTED),
            (1, "e1", ACCEPTED),
        ]
        for x in exits:
            got = await stored(stub, x.enrollment_id)
            assert got is not None
            assert (got.exit_time, got.exit_reason) == (x.exit_time, x.exit_reason)

        again = await exit_all(stub, *exits)
        assert statuses(again) == ["DUPLICATE", "DUPLICATE"]
        unary = await stub.ExitJourney(exit_("e0", ago(days=2)))  # the unary repeat agrees
        assert unary.enrollment == await stored(stub, "e0")

    async def test_mixed_batch_answers_each_item_as_the_unary_call_would(self, stub: Stub) -> None:
        for n in range(6):
            await stub.EnterJourney(enter(f"e{n}", f"c{n}", "welcome", ago(days=5)))
        await stub.ExitJourney(exit_("e5", ago(days=3)))
        items = [
            ending("e0", ago(days=2)),  # 0: ends e0
            ending("nobody", ago(days=2)),  # 1: unknown enrollment
            events_pb2.EnrollmentExit(enrollment_id="e1"),  # 2: bad fields
            ending("e2", ago(days=6)),  # 3: before its entry
            ending("e0", ago(days=2)),  # 4: repeats item 0
            ending("e0", ago(days=1)),  # 5: e0 ended otherwise by item 0
            ending("e5", ago(days=3)),  # 6: repeats a stored exit
            ending("e5", ago(days=3), events_pb2.EXIT_REASON_REMOVED),  # 7: another reason
            ending("e3", ago(days=6)),  # 8: before its entry ...
            ending("e3", ago(days=4)),  # 9: ... so this one ends e3
        ]
        results = await exit_all(stub, *items)
        assert [(r.index, r.event_id) for r in results] == [
            (n, x.enrollment_id) for n, x in enumerate(items)
        ]
        assert statuses(results) == [
            "ACCEPTED",
            "REJECTED",
            "REJECTED",
            "REJECTED",
            "DUPLICATE",
            "REJECTED",
            "DUPLICATE",
            "REJECTED",
            "REJECTED",
            "ACCEPTED",
        ]
        assert errors(results) == [
            None,
            ("NOT_FOUND", "ENROLLMENT_NOT_FOUND"),
            ("INVALID_ARGUMENT", "INVALID_ARGUMENT"),
            ("FAILED_PRECONDITION", "EXIT_BEFORE_ENTRY"),
            None,
            ("ALREADY_EXISTS", "ENROLLMENT_ALREADY_EXITED"),
            None,
            ("ALREADY_EXISTS", "ENROLLMENT_ALREADY_EXITED"),
            ("FAILED_PRECONDITION", "EXIT_BEFORE_ENTRY"),
            None,
        ]
        assert {v.field for v in results[2].error.field_violations} == {
            "exits[2].exit_time",
            "exits[2].exit_reason",
        }
        ended = {n: await stored(stub, f"e{n}") for n in range(6)}
        assert {
            n: e.exit_time if e and e.HasField("exit_time") else None for n, e in ended.items()
        } == {
            0: ago(days=2),
            1: None,
            2: None,
            3: ago(days=4),
            4: None,
            5: ago(days=3),
        }

    @pytest.mark.parametrize("size", [0, MAX_BATCH + 1])
    async def test_an_empty_or_oversized_batch_is_invalid_as_a_whole(
        self, stub: Stub, size: int
    ) -> None:
        await stub.EnterJourney(enter("e0", "c1", "welcome", ago(days=2)))
        items = [ending("e0", ago(days=1)) for _ in range(size)]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await exit_all(stub, *items)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(caught.value)) == ["exits"]
        got = await stored(stub, "e0")
        assert got is not None and not got.HasField("exit_time")


# --- a batch equals its items one by one ------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """Touchpoints and goal events of a few contacts in two journeys with the same goal, then
    entries and exits that decide which journey (if any) each goal event converts for."""

    touchpoints: list[events_pb2.Touchpoint]
    goal_events: list[events_pb2.GoalEvent]
    enrollments: list[events_pb2.Enrollment]
    exits: list[events_pb2.EnrollmentExit]


JOURNEYS = ("spring", "summer")
REASONS = [
    events_pb2.EXIT_REASON_COMPLETED,
    events_pb2.EXIT_REASON_GOAL_REACHED,
    events_pb2.EXIT_REASON_EXIT_RULE,
    events_pb2.EXIT_REASON_REMOVED,
]


def scenario(seed: int, contacts: int, once: bool) -> Scenario:
    """`once`: each contact enters once at most, so each entry re-decides its contact alone."""
    rng = random.Random(seed)
    hour = timedelta(hours=1)

    def at(hours_ago: int) -> timestamp_pb2.Timestamp:
        return ts(NOW - hours_ago * hour)

    touchpoints, goal_events, enrollments, exits = [], [], [], []
    for c in range(contacts):
        contact = f"c{c}"
        for n in range(rng.randint(1, 4)):
            journey = rng.choice(JOURNEYS)
            touchpoints.append(
                touchpoint(
                    f"t-{c}-{n}", contact, journey, f"{journey}-email", at(rng.randint(30, 400))
                )
            )
        for n in range(rng.randint(1, 3)):
            goal_events.append(
                goal_event(
                    f"g-{c}-{n}", contact, "FORM_SUBMITTED", at(rng.randint(5, 300)), form_id="f"
                )
            )
        stays = 1 if once else rng.randint(1, 3)
        for n in range(stays):
            enter_hours = rng.randint(200, 500)
            enrollment_id = f"e-{c}-{n}"
            enrollments.append(
                enrollment(
                    enrollment_id,
                    contact,
                    rng.choice(JOURNEYS),
                    at(enter_hours),
                    holdout=rng.random() < 0.15,
                )
            )
            if rng.random() < 0.5:
                exits.append(
                    ending(enrollment_id, at(rng.randint(1, enter_hours)), rng.choice(REASONS))
                )
    rng.shuffle(enrollments)
    rng.shuffle(exits)
    return Scenario(touchpoints, goal_events, enrollments, exits)


@dataclass(frozen=True)
class Seen:
    """What a tenant holds after a scenario, as a caller can read it."""

    enrollments: dict[str, events_pb2.Enrollment | None]
    awards: dict[str, list[str]]
    outcomes: dict[str, str]
    reports: dict[str, str]
    stream: list[str]
    net: dict[tuple[str, str], str]


def _text(value: Message) -> str:
    return text_format.MessageToString(value, as_one_line=True)


async def seen(stub: Stub, world: Scenario) -> Seen:
    stream = await read_stream(stub)
    assert [e.position for e in stream] == list(range(1, len(stream) + 1))
    net: dict[tuple[str, str], str] = {}
    for e in stream:  # the stream folded: the awards it says are current
        key = (e.award.enrollment_id, e.award.conversion_id)
        if e.type == RETRACTED:
            del net[key]
        else:
            net[key] = _text(e.award)
    award_lists = {j: [_text(a) for a in await awards(stub, j)] for j in JOURNEYS}
    reports = {}
    for j in JOURNEYS:
        report = await stub.GetJourneyReport(
            pb.GetJourneyReportRequest(
                journey_id=j, start_time=ago(days=30), end_time=ts(NOW + timedelta(days=1))
            )
        )
        reports[j] = _text(report.report)
    outcomes = {}
    for g in world.goal_events:
        explained = await stub.ExplainGoalEvent(pb.ExplainGoalEventRequest(event_id=g.event_id))
        outcomes[g.event_id] = _text(explained.explanation)
    return Seen(
        enrollments={
            e.enrollment_id: await stored(stub, e.enrollment_id) for e in world.enrollments
        },
        awards=award_lists,
        outcomes=outcomes,
        reports=reports,
        stream=[
            f"{conversions_pb2.ConversionEventType.Name(e.type)} {_text(e.award)}" for e in stream
        ],
        net=net,
    )


class StreamInTenant(grpc.aio.UnaryStreamClientInterceptor):
    """Sends every server-streaming call with one tenant's x-tenant-id (InTenant sends the
    unary ones: a channel takes an interceptor for one kind of call only)."""

    def __init__(self, tenant_id: str) -> None:
        self.unary = InTenant(tenant_id)

    async def intercept_unary_stream(
        self, continuation: Any, client_call_details: Any, request: Any
    ) -> Any:
        return await self.unary.intercept_unary_unary(continuation, client_call_details, request)


def in_tenant(tenant_id: str) -> list[grpc.aio.ClientInterceptor]:
    return [InTenant(tenant_id), StreamInTenant(tenant_id)]


@pytest.fixture
async def two_tenants(shared_server: str) -> AsyncIterator[tuple[Stub, Stub]]:
    """Stubs of two new tenants on the module's server."""
    async with (
        grpc.aio.insecure_channel(
            shared_server, interceptors=in_tenant(f"one-{uuid.uuid4().hex[:12]}")
        ) as one,
        grpc.aio.insecure_channel(
            shared_server, interceptors=in_tenant(f"batch-{uuid.uuid4().hex[:12]}")
        ) as batch,
    ):
        yield (
            service_pb2_grpc.JourneyConversionsServiceStub(one),
            service_pb2_grpc.JourneyConversionsServiceStub(batch),
        )


async def prepare(stub: Stub, world: Scenario) -> None:
    """The journeys, and every touchpoint and goal event (before any entry: none converts)."""
    for j in JOURNEYS:
        await stub.DefineJourney(
            define_journey(j, [message(f"{j}-email")], goal("FORM_SUBMITTED", form_ids=["f"]))
        )
    results = await stub.BatchRecordTouchpoints(
        pb.BatchRecordTouchpointsRequest(touchpoints=world.touchpoints)
    )
    assert {r.status for r in results.results} == {ACCEPTED}
    goals = await stub.BatchRecordGoalEvents(
        pb.BatchRecordGoalEventsRequest(goal_events=world.goal_events)
    )
    assert {r.status for r in goals.results} == {ACCEPTED}


async def one_by_one(stub: Stub, world: Scenario) -> None:
    for e in world.enrollments:
        await stub.EnterJourney(pb.EnterJourneyRequest(enrollment=e))
    for x in world.exits:
        try:
            await stub.ExitJourney(
                pb.ExitJourneyRequest(
                    enrollment_id=x.enrollment_id, exit_time=x.exit_time, exit_reason=x.exit_reason
                )
            )
        except grpc.aio.AioRpcError as error:  # an exit before its entry, as in the batch
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION


async def batched(stub: Stub, world: Scenario) -> None:
    results = await enter_all(stub, *world.enrollments)
    assert set(statuses(results)) == {"ACCEPTED"}
    if world.exits:
        exited = await exit_all(stub, *world.exits)
        assert {r.error.code for r in exited if r.status == REJECTED} <= {"FAILED_PRECONDITION"}


class TestBatchEqualsOneByOne:
    @pytest.mark.parametrize("seed", range(4))
    async def test_each_contact_once_same_state_and_same_stream(
        self, two_tenants: tuple[Stub, Stub], seed: int
    ) -> None:
        """With each contact in one entry and one exit at most, every entry re-decides its
        contact alone: the stream carries the same events (in another order: a batch
        re-decides its contacts together)."""
        world = scenario(seed, contacts=12, once=True)
        one, batch = two_tenants
        for stub in two_tenants:
            await prepare(stub, world)
        await one_by_one(one, world)
        await batched(batch, world)
        a, b = await seen(one, world), await seen(batch, world)
        assert any(s.startswith("CONVERSION_EVENT_TYPE_AWARDED") for s in a.stream)
        assert b.enrollments == a.enrollments
        assert b.awards == a.awards
        assert b.outcomes == a.outcomes
        assert b.reports == a.reports
        assert Counter(b.stream) == Counter(a.stream)
        assert b.net == a.net

    @pytest.mark.parametrize("seed", range(4))
    async def test_contacts_with_many_stays_same_state_and_same_net_stream(
        self, two_tenants: tuple[Stub, Stub], seed: int
    ) -> None:
        """When later entries of a contact move what earlier ones awarded, sending them one by
        one emits each move; the batch emits only the net change, to the same awards."""
        world = scenario(100 + seed, contacts=10, once=False)
        one, batch = two_tenants
        for stub in two_tenants:
            await prepare(stub, world)
        await one_by_one(one, world)
        await batched(batch, world)
        a, b = await seen(one, world), await seen(batch, world)
        assert b.enrollments == a.enrollments
        assert b.awards == a.awards
        assert b.outcomes == a.outcomes
        assert b.reports == a.reports
        assert b.net == a.net
        assert len(b.stream) <= len(a.stream)
        current = {text for texts in b.awards.values() for text in texts}
        assert set(b.net.values()) == current
