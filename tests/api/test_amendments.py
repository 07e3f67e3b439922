"""Order updates and refunds: an ORDER_UPDATED naming an earlier goal event in amends_event_id
changes the credited value of that event's conversion, in awards, reports and the stream."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

import asyncpg
import grpc
import pytest
from journeys.conversions.v1 import conversions_pb2, events_pb2, journey_pb2
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import domain
from journey_conversions.server import App
from journey_conversions.store import ingest
from tests.api.test_conversion_events import read_events
from tests.builders import (
    ago,
    define_journey,
    enter,
    field_violations,
    goal,
    goal_event,
    message,
    touchpoint,
)

if TYPE_CHECKING:
    from tests.builders import Stub


def eur(units: int) -> journey_pb2.Money:
    return journey_pb2.Money(currency_code="EUR", amount_micros=units * 1_000_000)


def order(event_id: str, days: float, units: int | None) -> events_pb2.GoalEvent:
    return goal_event(
        event_id,
        "c1",
        "ORDER_PLACED",
        ago(days=days),
        product_ids=["p1"],
        value=eur(units) if units is not None else None,
    )


def update(event_id: str, amends: str, days: float, units: int | None) -> events_pb2.GoalEvent:
    event = goal_event(
        event_id,
        "c1",
        "ORDER_UPDATED",
        ago(days=days),
        product_ids=["p1"],
        value=eur(units) if units is not None else None,
    )
    event.amends_event_id = amends
    return event


async def record(stub: Stub, *events: events_pb2.GoalEvent) -> None:
    for event in events:
        await stub.RecordGoalEvent(pb.RecordGoalEventRequest(goal_event=event))


async def goal_award(stub: Stub) -> conversions_pb2.ConversionAward:
    listed = await stub.ListConversionAwards(pb.ListConversionAwardsRequest(journey_id="shop"))
    (award,) = [a for a in listed.awards if not a.conversion_id]
    return award


@pytest.fixture
async def shop(stub: Stub) -> Stub:
    """c1 is in journey "shop" (goal: order placed) and got its email 5 days ago."""
    await stub.DefineJourney(define_journey("shop", [message("email-1")], goal("ORDER_PLACED")))
    await stub.EnterJourney(enter("e1", "c1", "shop", ago(days=6)))
    await stub.RecordTouchpoint(
        pb.RecordTouchpointRequest(
            touchpoint=touchpoint("t1", "c1", "shop", "email-1", ago(days=5))
        )
    )
    return stub


class TestAmendedValue:
    """The latest amendment's value is the one credited."""

    async def test_an_update_changes_the_value_everywhere(self, shop: Stub) -> None:
        await record(shop, order("o1", 4, 100))
        assert (await goal_award(shop)).value == eur(100)
        await record(shop, update("u1", "o1", 3, 80))
        assert (await goal_award(shop)).value == eur(80)
        report = (await shop.GetJourneyReport(pb.GetJourneyReportRequest(journey_id="shop"))).report
        assert list(report.value) == [eur(80)]
        assert list(report.versions[0].value) == [eur(80)]
        awarded, updated = await read_events(shop, 0, 2)
        assert awarded.type == conversions_pb2.CONVERSION_EVENT_TYPE_AWARDED
        assert updated.type == conversions_pb2.CONVERSION_EVENT_TYPE_UPDATED
        assert (awarded.award.value, updated.award.value) == (eur(100), eur(80))

    async def test_a_refund_without_value_leaves_none(self, shop: Stub) -> None:
        await record(shop, order("o1", 4, 100), update("r1", "o1", 3, None))
        assert not (await goal_award(shop)).HasField("value")

    async def test_the_latest_of_several_wins_whatever_their_arrival(self, shop: Stub) -> None:
        await record(
            shop, update("u2", "o1", 1, 60), order("o1", 4, 100), update("u1", "o1", 3, 80)
        )
        assert (await goal_award(shop)).value == eur(60)

    async def test_an_update_before_the_order_does_not_apply(self, shop: Stub) -> None:
        await record(shop, order("o1", 4, 100), update("u0", "o1", 4.5, 10))
        assert (await goal_award(shop)).value == eur(100)

    async def test_another_contacts_update_does_not_apply(self, shop: Stub) -> None:
        other = update("u1", "o1", 3, 80)
        other.contact_id = "c2"
        await record(shop, order("o1", 4, 100), other)
        assert (await goal_award(shop)).value == eur(100)


class TestFinalConversions:
    """A conversion older than the re-decision horizon is never re-decided, but its value
    still follows an amendment."""

    async def test_an_update_reaches_a_final_conversion(self, shop: Stub, app: App) -> None:
        await record(shop, order("o1", 4, 100))
        amendment = domain.GoalEvent(
            "u1",
            "c1",
            domain.GoalEventType.ORDER_UPDATED,
            datetime.now(UTC) - timedelta(days=3),
            product_ids=frozenset({"p1"}),
            value=domain.Money("EUR", 75_000_000),
            amends_event_id="o1",
        )
        # A horizon after everything: the order's conversion is final, as if it were old.
        horizon = datetime.now(UTC) + timedelta(days=1)
        async with app.pool.acquire() as conn, conn.transaction():
            await ingest.record_goal_events(
                cast(asyncpg.Connection, conn), "default", [amendment], horizon
            )
        assert (await goal_award(shop)).value == eur(75)
        _, updated = await read_events(shop, 0, 2)
        assert updated.type == conversions_pb2.CONVERSION_EVENT_TYPE_UPDATED
        assert updated.award.value == eur(75)


class TestValidation:
    """amends_event_id belongs to ORDER_UPDATED and names another event."""

    async def test_only_order_updates_amend(self, shop: Stub) -> None:
        placed = order("o2", 1, 5)
        placed.amends_event_id = "o1"
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await record(shop, placed)
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "goal_event.amends_event_id" in field_violations(error.value)

    async def test_an_update_cannot_amend_itself(self, shop: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await record(shop, update("u1", "u1", 1, 5))
        assert "goal_event.amends_event_id" in field_violations(error.value)
