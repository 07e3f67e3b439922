"""Two server processes on one database, many concurrent writers: the stored attribution
equals the rule applied to the whole set of events, and the event stream is gap-free."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

import asyncpg
import grpc
import pytest
from journeys.conversions.v1 import events_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import domain
from journey_conversions.attribution import decide
from tests import builders
from tests.processes import serve

if TYPE_CHECKING:
    from tests.builders import Stub

JOURNEYS = ("alpha", "beta", "gamma")
CONTACTS = 8  # few contacts, many events each: writers contend for the same contacts
WORKERS = 12


def stub_for(channel: grpc.aio.Channel) -> Stub:
    return service_pb2_grpc.JourneyConversionsServiceStub(channel)


class Scenario:
    """Random enrollments, touchpoints, exits and goal events, kept as domain values too."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.enrollments: list[domain.Enrollment] = []
        self.exits: dict[str, datetime] = {}
        self.touchpoints: list[domain.Touchpoint] = []
        self.goal_events: list[domain.GoalEvent] = []
        for c in range(CONTACTS):
            contact = f"c{c}"
            for journey in rng.sample(JOURNEYS, rng.randint(1, 3)):
                enrollment = domain.Enrollment(
                    f"{journey}-{contact}", contact, journey, 1, self.at(rng.randint(15, 20))
                )
                self.enrollments.append(enrollment)
                if rng.random() < 0.3:
                    self.exits[enrollment.enrollment_id] = self.at(rng.randint(1, 14))
            for t in range(rng.randint(2, 12)):
                journey = rng.choice(JOURNEYS)
                self.touchpoints.append(
                    domain.Touchpoint(
                        f"t-{contact}-{t}",
                        contact,
                        journey,
                        1,
                        f"{journey}-email",
                        domain.Channel.EMAIL,
                        domain.Action.DELIVERED,
                        self.at(rng.randint(2, 16), rng.randint(0, 23)),
                    )
                )
            for g in range(rng.randint(1, 6)):
                self.goal_events.append(
                    domain.GoalEvent(
                        f"g-{contact}-{g}",
                        contact,
                        domain.GoalEventType.FORM_SUBMITTED,
                        self.at(rng.randint(0, 12), rng.randint(0, 23)),
                        form_id="demo",
                    )
                )

    def at(self, days: int, hours: int = 0) -> datetime:
        return self.now - timedelta(days=days, hours=hours)

    def expected(self) -> dict[str, domain.Decision]:
        """The rule applied to every contact's full history at once."""
        goal = domain.Criterion(domain.GoalEventType.FORM_SUBMITTED, form_ids=frozenset({"demo"}))
        rules = {j: domain.JourneyRules(j, (domain.CriterionChange(None, goal),)) for j in JOURNEYS}
        decisions = {}
        for c in range(CONTACTS):
            contact = f"c{c}"
            enrollments = tuple(
                domain.Enrollment(
                    e.enrollment_id,
                    e.contact_id,
                    e.journey_id,
                    1,
                    e.enter_time,
                    self.exits.get(e.enrollment_id),
                )
                for e in self.enrollments
                if e.contact_id == contact
            )
            decisions[contact] = decide(
                domain.ContactHistory(
                    contact_id=contact,
                    journeys={e.journey_id: rules[e.journey_id] for e in enrollments},
                    enrollments=enrollments,
                    touchpoints=tuple(t for t in self.touchpoints if t.contact_id == contact),
                    goal_events=tuple(g for g in self.goal_events if g.contact_id == contact),
                )
            )
        return decisions


def touchpoint_message(t: domain.Touchpoint) -> events_pb2.Touchpoint:
    return builders.touchpoint(
        t.event_id, t.contact_id, t.journey_id, t.message_id, builders.ts(t.occur_time)
    )


def goal_event_message(g: domain.GoalEvent) -> events_pb2.GoalEvent:
    return builders.goal_event(
        g.event_id, g.contact_id, "FORM_SUBMITTED", builders.ts(g.occur_time), form_id="demo"
    )


async def send_all(stubs: Sequence[Stub], scenario: Scenario, seed: int) -> None:
    """Every write, shuffled, duplicated at random, split over workers and both servers."""
    rng = random.Random(seed)
    writes: list[tuple[str, object]] = (
        [("touchpoint", t) for t in scenario.touchpoints]
        + [("goal", g) for g in scenario.goal_events]
        + [("exit", e) for e in scenario.exits.items()]
    )
    writes += rng.sample(writes, len(writes) // 4)  # retries: the same events again
    rng.shuffle(writes)
    chunks = [writes[i::WORKERS] for i in range(WORKERS)]

    async def worker(index: int, chunk: list[tuple[str, object]]) -> None:
        position = 0
        while position < len(chunk):
            stub = stubs[(index + position) % len(stubs)]
            size = rng.randint(1, 3)
            group = chunk[position : position + size]
            position += size
            touchpoints = [cast(domain.Touchpoint, v) for k, v in group if k == "touchpoint"]
            goals = [cast(domain.GoalEvent, v) for k, v in group if k == "goal"]
            exits = [cast(tuple[str, datetime], v) for k, v in group if k == "exit"]
            if touchpoints:
                reply = await stub.BatchRecordTouchpoints(
                    pb.BatchRecordTouchpointsRequest(
                        touchpoints=[touchpoint_message(t) for t in touchpoints]
                    )
                )
                assert all(r.status != events_pb2.ITEM_STATUS_REJECTED for r in reply.results)
            if goals:
                reply_goals = await stub.BatchRecordGoalEvents(
                    pb.BatchRecordGoalEventsRequest(
                        goal_events=[goal_event_message(g) for g in goals]
                    )
                )
                assert all(r.status != events_pb2.ITEM_STATUS_REJECTED for r in reply_goals.results)
            for enrollment_id, when in exits:
                await stub.ExitJourney(builders.exit_(enrollment_id, builders.ts(when)))

    await asyncio.gather(*(worker(i, chunk) for i, chunk in enumerate(chunks)))


async def stored_state(
    database_url: str,
) -> tuple[dict[str, tuple[object, ...]], set[tuple[str, str]], list[asyncpg.Record]]:
    conn = await asyncpg.connect(database_url)
    try:
        outcomes: dict[str, tuple[object, ...]] = {
            r["goal_event_id"]: (
                r["status"],
                r["journey_id"],
                r["enrollment_id"],
                r["touchpoint_event_id"],
            )
            for r in await conn.fetch("select * from goal_outcomes")
        }
        awards = {
            (r["enrollment_id"], r["conversion_id"])
            for r in await conn.fetch("select enrollment_id, conversion_id from awards")
        }
        events = await conn.fetch(
            "select position, event_type, award from conversion_events order by position"
        )
        return outcomes, awards, events
    finally:
        await conn.close()


class TestTwoServersOneDatabase:
    """Concurrent, duplicated, shuffled writes through two processes give the sequential result."""

    @pytest.mark.parametrize("seed", [1, 2, 3])
    async def test_outcomes_awards_and_stream_equal_the_rule_on_the_whole_set(
        self, database_url: str, seed: int
    ) -> None:
        scenario = Scenario(seed)
        async with (
            serve("--database-url", database_url) as one,
            serve("--database-url", database_url) as two,
        ):
            channels = [grpc.aio.insecure_channel(s.target) for s in (one, two)]
            stubs = [stub_for(c) for c in channels]
            try:
                for journey in JOURNEYS:
                    await stubs[0].DefineJourney(
                        builders.define_journey(
                            journey,
                            [builders.message(f"{journey}-email")],
                            builders.goal("FORM_SUBMITTED", form_ids=["demo"]),
                        )
                    )
                await asyncio.gather(
                    *(
                        stubs[i % 2].EnterJourney(
                            builders.enter(
                                e.enrollment_id,
                                e.contact_id,
                                e.journey_id,
                                builders.ts(e.enter_time),
                            )
                        )
                        for i, e in enumerate(scenario.enrollments)
                    )
                )
                await send_all(stubs, scenario, seed)
            finally:
                for channel in channels:
                    await channel.close()

        outcomes, awards, events = await stored_state(database_url)
        expected = scenario.expected()
        expected_outcomes = {
            event_id: (
                int(o.status),
                o.journey_id,
                o.enrollment_id,
                o.touchpoint.event_id if o.touchpoint else "",
            )
            for d in expected.values()
            for event_id, o in d.outcomes.items()
        }
        assert outcomes == expected_outcomes
        assert awards == {key for d in expected.values() for key in d.awards}
        assert any(o[0] == int(domain.OutcomeStatus.CONVERTED) for o in outcomes.values())

        # The stream: positions 1..N without gaps, and folding it gives the current awards.
        assert [e["position"] for e in events] == list(range(1, len(events) + 1))
        folded: set[tuple[str, str]] = set()
        for event in events:
            award = json.loads(event["award"])
            key = (award["enrollment_id"], award["conversion_id"])
            kind = domain.ConversionEventType(event["event_type"])
            if kind == domain.ConversionEventType.AWARDED:
                assert key not in folded
                folded.add(key)
            else:
                assert key in folded
                if kind == domain.ConversionEventType.RETRACTED:
                    folded.remove(key)
        assert folded == awards
