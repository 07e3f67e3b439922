"""Journey and named-conversion definitions through the real server: define, read, list,
version, goal history, and the errors the contract promises.

The tests share one server and database, each in a tenant of its own (see `stub`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import grpc
import pytest
from journeys.conversions.v1 import conversions_pb2, journey_pb2
from journeys.conversions.v1 import service_pb2 as pb

from tests.builders import (
    ago,
    define_journey,
    enter,
    error_reason,
    field_violations,
    goal,
    message,
)

if TYPE_CHECKING:
    from tests.builders import Stub


@pytest.fixture
def stub(tenant_stub: Stub) -> Stub:
    """This module's tests share one server, each in a tenant of its own."""
    return tenant_stub


def conversion(
    conversion_id: str,
    name: str,
    journey_id: str = "welcome",
    request_id: str | None = None,
    value: journey_pb2.Money | None = None,
    trigger: journey_pb2.GoalCriterion | None = None,
) -> pb.DefineConversionRequest:
    return pb.DefineConversionRequest(
        request_id=request_id or f"conv-{conversion_id}-{name}",
        conversion=conversions_pb2.ConversionDefinition(
            conversion_id=conversion_id,
            journey_id=journey_id,
            name=name,
            value=value,
            trigger=trigger,
        ),
    )


class TestDefineAndGet:
    """A defined journey reads back as it was defined, with its output-only fields filled."""

    async def test_defined_journey_reads_back_with_versions_goal_and_times(
        self, stub: Stub
    ) -> None:
        request = define_journey(
            "welcome",
            [message("email-1", step_id="s1"), message("sms-1", "SMS", step_id="s2")],
            goal("EMAIL_CLICKED", message_ids=["email-1"]),
            window_days=7,
            exclude_machine_opens=True,
        )
        request.journey.display_name = "Welcome series"
        request.journey.purpose = journey_pb2.JOURNEY_PURPOSE_NURTURE
        defined = (await stub.DefineJourney(request)).journey

        got = (await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"))).journey
        assert got == defined
        assert got.display_name == "Welcome series"
        assert got.purpose == journey_pb2.JOURNEY_PURPOSE_NURTURE
        assert got.attribution_window.ToTimedelta() == timedelta(days=7)
        assert got.exclude_machine_opens
        assert [v.version for v in got.versions] == [1]
        assert {(m.message_id, m.channel, m.step_id) for m in got.versions[0].messages} == {
            ("email-1", journey_pb2.CHANNEL_EMAIL, "s1"),
            ("sms-1", journey_pb2.CHANNEL_SMS, "s2"),
        }
        assert got.goal == goal("EMAIL_CLICKED", message_ids=["email-1"])
        (first,) = got.goal_history
        assert first.goal == got.goal
        assert not first.HasField("effective_time"), "the first goal is in force from the start"
        assert got.HasField("create_time") and got.HasField("update_time")

    async def test_journey_without_goal_has_default_window_and_no_history(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("plain", [message("m1")]))
        got = (await stub.GetJourney(pb.GetJourneyRequest(journey_id="plain"))).journey
        assert not got.HasField("goal")
        assert list(got.goal_history) == []
        assert got.attribution_window.ToTimedelta() == timedelta(days=30)

    async def test_unknown_journey_is_not_found_with_reason(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.GetJourney(pb.GetJourneyRequest(journey_id="nowhere"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(caught.value) == "JOURNEY_NOT_FOUND"


class TestListJourneys:
    """ListJourneys pages through journeys by id with opaque tokens."""

    async def test_pages_round_trip_every_journey_once_in_id_order(self, stub: Stub) -> None:
        ids = [f"j{n:02d}" for n in range(7)]
        for journey_id in reversed(ids):
            await stub.DefineJourney(define_journey(journey_id, [message("m")]))
        seen: list[str] = []
        sizes: list[int] = []
        token = ""
        while True:
            page = await stub.ListJourneys(pb.ListJourneysRequest(page_size=3, page_token=token))
            seen.extend(j.journey_id for j in page.journeys)
            sizes.append(len(page.journeys))
            token = page.next_page_token
            if not token:
                break
        assert seen == ids
        assert sizes == [3, 3, 1]

    async def test_exactly_full_last_page_has_no_next_token(self, stub: Stub) -> None:
        for journey_id in ("a", "b"):
            await stub.DefineJourney(define_journey(journey_id, [message("m")]))
        page = await stub.ListJourneys(pb.ListJourneysRequest(page_size=2))
        assert [j.journey_id for j in page.journeys] == ["a", "b"]
        assert page.next_page_token == ""

    async def test_default_page_size_returns_full_journeys(self, stub: Stub) -> None:
        await stub.DefineJourney(
            define_journey("only", [message("m")], goal("FORM_SUBMITTED", form_ids=["f"]))
        )
        page = await stub.ListJourneys(pb.ListJourneysRequest())
        (journey,) = page.journeys
        assert journey.goal.form_ids == ["f"]
        assert journey.versions[0].messages[0].message_id == "m"

    @pytest.mark.parametrize(
        "token",
        ["garbage!", "bm90IGpzb24", "WyJhIiwiYiJd", "eyJhIjoxfQ=="],
        ids=["not-base64", "not-json", "two-part-key", "not-a-list"],
    )
    async def test_bad_page_token_is_invalid_argument_on_page_token(
        self, stub: Stub, token: str
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ListJourneys(pb.ListJourneysRequest(page_token=token))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "page_token" in field_violations(caught.value)


class TestVersions:
    """Versions are added over time and are immutable once defined."""

    async def test_later_definition_adds_a_version_and_keeps_the_first(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
        await stub.DefineJourney(
            define_journey("welcome", [message("email-1"), message("email-2")], version=2)
        )
        got = (await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"))).journey
        assert [v.version for v in got.versions] == [1, 2]
        assert [m.message_id for m in got.versions[0].messages] == ["email-1"]
        assert [m.message_id for m in got.versions[1].messages] == ["email-1", "email-2"]
        entered = await stub.EnterJourney(enter("e2", "c1", "welcome", ago(hours=1), version=2))
        assert entered.enrollment.version == 2

    async def test_resending_a_defined_version_unchanged_is_accepted(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("a"), message("b")]))
        again = define_journey("welcome", [message("b"), message("a")], request_id="again")
        response = await stub.DefineJourney(again)
        assert [v.version for v in response.journey.versions] == [1]

    async def test_resending_a_defined_version_changed_is_failed_precondition(
        self, stub: Stub
    ) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
        changed = define_journey(
            "welcome", [message("email-1"), message("email-2")], request_id="changed"
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DefineJourney(changed)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(caught.value) == "VERSION_IMMUTABLE"
        got = (await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"))).journey
        assert [m.message_id for m in got.versions[0].messages] == ["email-1"]

    async def test_a_message_changing_channel_in_a_new_version_is_invalid(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("m1")]))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DefineJourney(define_journey("welcome", [message("m1", "SMS")], version=2))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "journey.versions[0].messages[0].channel" in field_violations(caught.value)


class TestGoals:
    """A journey's goal must name its own messages, and every change is kept in its history."""

    async def test_message_goal_naming_a_message_not_in_the_journey_is_invalid(
        self, stub: Stub
    ) -> None:
        request = define_journey(
            "welcome", [message("email-1")], goal("EMAIL_CLICKED", message_ids=["email-9"])
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DefineJourney(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        violations = field_violations(caught.value)
        assert list(violations) == ["journey.goal.message_ids[0]"]
        assert "email-9" in violations["journey.goal.message_ids[0]"]
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    async def test_message_goal_naming_a_message_of_another_channel_is_invalid(
        self, stub: Stub
    ) -> None:
        request = define_journey(
            "welcome",
            [message("email-1"), message("sms-1", "SMS")],
            goal("EMAIL_OPENED", message_ids=["email-1", "sms-1"]),
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DefineJourney(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        violations = field_violations(caught.value)
        assert list(violations) == ["journey.goal.message_ids[1]"]
        assert "SMS" in violations["journey.goal.message_ids[1]"]

    async def test_message_goal_may_name_a_message_of_an_earlier_version(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
        response = await stub.DefineJourney(
            define_journey(
                "welcome",
                [message("email-2")],
                goal("EMAIL_CLICKED", message_ids=["email-1"]),
                version=2,
            )
        )
        assert list(response.journey.goal.message_ids) == ["email-1"]

    async def test_goal_change_is_kept_in_history_with_its_effective_time(self, stub: Stub) -> None:
        first = goal("ORDER_PLACED")
        second = goal("FORM_SUBMITTED", form_ids=["demo"])
        await stub.DefineJourney(define_journey("welcome", [message("m")], first))
        change = define_journey("welcome", [message("m")], second, request_id="change")
        change.goal_effective_time.CopyFrom(ago(hours=2))
        journey = (await stub.DefineJourney(change)).journey

        assert journey.goal == second
        assert [(h.goal, h.HasField("effective_time")) for h in journey.goal_history] == [
            (first, False),
            (second, True),
        ]
        assert journey.goal_history[1].effective_time == ago(hours=2)
        got = (await stub.GetJourney(pb.GetJourneyRequest(journey_id="welcome"))).journey
        assert list(got.goal_history) == list(journey.goal_history)

    async def test_goal_change_without_effective_time_takes_effect_at_the_call(
        self, stub: Stub
    ) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("m")], goal("ORDER_PLACED")))
        before = datetime.now(UTC) - timedelta(seconds=1)
        journey = (
            await stub.DefineJourney(
                define_journey(
                    "welcome",
                    [message("m")],
                    goal("ORDER_UPDATED"),
                    request_id="change",
                )
            )
        ).journey
        after = datetime.now(UTC) + timedelta(seconds=1)
        effective = journey.goal_history[1].effective_time.ToDatetime(UTC)
        assert before <= effective <= after

    async def test_removing_the_goal_is_kept_in_history(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("m")], goal("ORDER_PLACED")))
        journey = (
            await stub.DefineJourney(define_journey("welcome", [message("m")], request_id="r2"))
        ).journey
        assert not journey.HasField("goal")
        assert [h.HasField("goal") for h in journey.goal_history] == [True, False]

    async def test_resending_the_same_goal_adds_no_history(self, stub: Stub) -> None:
        criterion = goal("CONTACT_UPDATED", attribute_name="plan", attribute_value="paid")
        await stub.DefineJourney(define_journey("welcome", [message("m")], criterion))
        journey = (
            await stub.DefineJourney(
                define_journey("welcome", [message("m")], criterion, request_id="r2")
            )
        ).journey
        assert len(journey.goal_history) == 1

    async def test_goal_change_dated_before_the_last_change_is_failed_precondition(
        self, stub: Stub
    ) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("m")], goal("ORDER_PLACED")))
        change = define_journey("welcome", [message("m")], goal("ORDER_UPDATED"), request_id="c1")
        change.goal_effective_time.CopyFrom(ago(hours=1))
        await stub.DefineJourney(change)
        earlier = define_journey(
            "welcome", [message("m")], goal("FORM_SUBMITTED", form_ids=["f"]), request_id="c2"
        )
        earlier.goal_effective_time.CopyFrom(ago(hours=3))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DefineJourney(earlier)
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(caught.value) == "GOAL_CHANGE_OUT_OF_ORDER"


class TestNamedConversions:
    """Named conversions are unique per journey by name, case- and space-insensitively."""

    @pytest.fixture(autouse=True)
    async def journey(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("welcome", [message("email-1")]))

    async def test_defined_conversion_is_listed_at_revision_one(self, stub: Stub) -> None:
        money = journey_pb2.Money(currency_code="EUR", amount_micros=12_500_000)
        response = await stub.DefineConversion(conversion("k1", "Booked meeting", value=money))
        assert response.conversion.revision == 1
        assert list(response.warnings) == []
        listed = await stub.ListConversions(pb.ListConversionsRequest(journey_id="welcome"))
        assert list(listed.conversions) == [response.conversion]
        assert listed.conversions[0].value == money

    async def test_same_name_with_other_case_and_spaces_is_already_exists(self, stub: Stub) -> None:
        await stub.DefineConversion(conversion("k1", "Booked meeting"))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DefineConversion(conversion("k2", " booked  MEETING"))
        assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
        assert error_reason(caught.value) == "CONVERSION_NAME_TAKEN"
        listed = await stub.ListConversions(pb.ListConversionsRequest(journey_id="welcome"))
        assert [c.conversion_id for c in listed.conversions] == ["k1"]

    async def test_near_duplicate_name_is_accepted_with_a_warning(self, stub: Stub) -> None:
        await stub.DefineConversion(conversion("k1", "Booked meeting"))
        response = await stub.DefineConversion(conversion("k2", "Booked meetings"))
        assert response.conversion.name == "Booked meetings"
        (warning,) = response.warnings
        assert "Booked meeting" in warning and "k1" in warning
        distinct = await stub.DefineConversion(conversion("k3", "Started paid plan"))
        assert list(distinct.warnings) == []

    async def test_update_of_a_known_conversion_bumps_its_revision(self, stub: Stub) -> None:
        first = (await stub.DefineConversion(conversion("k1", "Booked meeting"))).conversion
        updated = (
            await stub.DefineConversion(
                conversion(
                    "k1",
                    "Booked a meeting",
                    value=journey_pb2.Money(currency_code="USD", amount_micros=1),
                )
            )
        ).conversion
        assert updated.revision == 2
        assert updated.name == "Booked a meeting"
        assert updated.create_time == first.create_time
        listed = await stub.ListConversions(pb.ListConversionsRequest(journey_id="welcome"))
        assert list(listed.conversions) == [updated]

    async def test_renaming_a_conversion_to_its_own_name_respelled_is_not_a_duplicate(
        self, stub: Stub
    ) -> None:
        await stub.DefineConversion(conversion("k1", "Booked meeting"))
        updated = await stub.DefineConversion(conversion("k1", "BOOKED MEETING"))
        assert updated.conversion.revision == 2
        assert list(updated.warnings) == []

    async def test_conversion_of_unknown_journey_is_not_found(self, stub: Stub) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DefineConversion(conversion("k1", "Booked", journey_id="nowhere"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(caught.value) == "JOURNEY_NOT_FOUND"
        with pytest.raises(grpc.aio.AioRpcError) as listing:
            await stub.ListConversions(pb.ListConversionsRequest(journey_id="nowhere"))
        assert listing.value.code() == grpc.StatusCode.NOT_FOUND
        assert error_reason(listing.value) == "JOURNEY_NOT_FOUND"

    async def test_trigger_naming_a_message_not_in_the_journey_is_invalid(self, stub: Stub) -> None:
        request = conversion(
            "k1", "Clicked", trigger=goal("EMAIL_CLICKED", message_ids=["email-9"])
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.DefineConversion(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(caught.value)) == ["conversion.trigger.message_ids[0]"]

    async def test_conversions_page_by_id(self, stub: Stub) -> None:
        for n in range(5):
            await stub.DefineConversion(
                conversion(f"k{n}", f"Outcome number {n * 'x'}", request_id=f"r{n}")
            )
        first = await stub.ListConversions(
            pb.ListConversionsRequest(journey_id="welcome", page_size=3)
        )
        second = await stub.ListConversions(
            pb.ListConversionsRequest(
                journey_id="welcome", page_size=3, page_token=first.next_page_token
            )
        )
        assert [c.conversion_id for c in first.conversions] == ["k0", "k1", "k2"]
        assert [c.conversion_id for c in second.conversions] == ["k3", "k4"]
        assert second.next_page_token == ""
