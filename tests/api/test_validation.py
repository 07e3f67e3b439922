"""The validation matrix: for every rule of the contract, the status code and the exact path of
the field at fault, through the real server; and bad input is never INTERNAL.

Every case starts from a valid request and breaks one thing, so the violation it gets back is
the only one. Nothing here is ever stored, so the cases share one server and database.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from google.protobuf.message import Message
from journeys.conversions.v1 import conversions_pb2, events_pb2, journey_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from tests.builders import (
    ago,
    define_journey,
    enter,
    error_reason,
    exit_,
    field_violations,
    goal,
    goal_event,
    message,
    touchpoint,
)

if TYPE_CHECKING:
    from tests.builders import Stub

LONG_ID = "x" * 201
NUL_TOKEN = base64.urlsafe_b64encode(json.dumps(["\0"]).encode()).decode()
TOO_OLD = {"days": 31}
TOO_NEW = {"hours": -1}


@pytest.fixture(scope="module")
async def shared_stub(shared_server: str) -> AsyncIterator[Stub]:
    """The module's one server (no case writes anything)."""
    async with grpc.aio.insecure_channel(shared_server) as opened:
        yield service_pb2_grpc.JourneyConversionsServiceStub(opened)


def changed(request: Message, edit: Callable[[Any], object]) -> Message:
    """A copy of `request` with `edit` applied to it."""
    copy = type(request)()
    copy.CopyFrom(request)
    edit(copy)
    return copy


def stamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


# --- valid requests, one per method ---------------------------------------------------------

JOURNEY = define_journey(
    "welcome",
    [message("email-1"), message("sms-1", "SMS")],
    goal("ORDER_PLACED"),
    request_id="r1",
)
CONVERSION = pb.DefineConversionRequest(
    request_id="r1",
    conversion=conversions_pb2.ConversionDefinition(
        conversion_id="k1",
        journey_id="welcome",
        name="Booked meeting",
        value=journey_pb2.Money(currency_code="EUR", amount_micros=1),
    ),
)
ENTER = enter("e1", "c1", "welcome", ago(days=1))
EXIT = exit_("e1", ago(hours=1))
TOUCH = pb.RecordTouchpointRequest(
    touchpoint=touchpoint("t1", "c1", "welcome", "email-1", ago(hours=1))
)
GOAL_EVENT = pb.RecordGoalEventRequest(
    goal_event=goal_event("g1", "c1", "ORDER_PLACED", ago(hours=1), product_ids=["p1"])
)
MARK = pb.MarkConversionRequest(
    event_id="m1", enrollment_id="e1", conversion_id="k1", mark_time=ago(hours=1)
)
EVALUATE = pb.EvaluateGoalRequest(event_id="v1", enrollment_id="e1", evaluate_time=ago(hours=1))
REPORT = pb.GetJourneyReportRequest(journey_id="welcome")


@dataclass(frozen=True)
class Case:
    method: str
    request: Message
    field: str
    metadata: tuple[tuple[str, str], ...] = ()


def journey_goal(criterion: journey_pb2.GoalCriterion) -> Message:
    return changed(JOURNEY, lambda r: r.journey.goal.CopyFrom(criterion))


def goal_type(name: str, **fields: Any) -> Message:
    def edit(r: Any) -> None:
        r.goal_event.Clear()
        r.goal_event.CopyFrom(goal_event("g1", "c1", name, ago(hours=1), **fields))

    return changed(GOAL_EVENT, edit)


CASES: dict[str, Case] = {
    # DefineJourney
    "journey/missing-request-id": Case(
        "DefineJourney", changed(JOURNEY, lambda r: setattr(r, "request_id", "")), "request_id"
    ),
    "journey/missing-journey": Case(
        "DefineJourney", changed(JOURNEY, lambda r: r.ClearField("journey")), "journey"
    ),
    "journey/missing-id": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: setattr(r.journey, "journey_id", "")),
        "journey.journey_id",
    ),
    "journey/oversized-id": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: setattr(r.journey, "journey_id", LONG_ID)),
        "journey.journey_id",
    ),
    "journey/id-with-spaces": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: setattr(r.journey, "journey_id", " welcome")),
        "journey.journey_id",
    ),
    "journey/unknown-purpose": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: setattr(r.journey, "purpose", 42)),
        "journey.purpose",
    ),
    "journey/version-zero": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: setattr(r.journey.versions[0], "version", 0)),
        "journey.versions[0].version",
    ),
    "journey/version-twice": Case(
        "DefineJourney",
        changed(
            JOURNEY,
            lambda r: r.journey.versions.add(version=1),
        ),
        "journey.versions[1].version",
    ),
    "journey/missing-message-id": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: setattr(r.journey.versions[0].messages[1], "message_id", "")),
        "journey.versions[0].messages[1].message_id",
    ),
    "journey/message-twice": Case(
        "DefineJourney",
        changed(
            JOURNEY,
            lambda r: setattr(r.journey.versions[0].messages[1], "message_id", "email-1"),
        ),
        "journey.versions[0].messages[1].message_id",
    ),
    "journey/missing-channel": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: setattr(r.journey.versions[0].messages[0], "channel", 0)),
        "journey.versions[0].messages[0].channel",
    ),
    "journey/unknown-channel": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: setattr(r.journey.versions[0].messages[0], "channel", 99)),
        "journey.versions[0].messages[0].channel",
    ),
    "journey/window-too-short": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: r.journey.attribution_window.FromSeconds(59)),
        "journey.attribution_window",
    ),
    "journey/window-too-long": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: r.journey.attribution_window.FromSeconds(366 * 86400)),
        "journey.attribution_window",
    ),
    "journey/goal-effective-too-old": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: r.goal_effective_time.CopyFrom(ago(**TOO_OLD))),
        "goal_effective_time",
    ),
    "journey/goal-effective-too-new": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: r.goal_effective_time.CopyFrom(ago(**TOO_NEW))),
        "goal_effective_time",
    ),
    "goal/missing-type": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: setattr(r.journey.goal, "event_type", 0)),
        "journey.goal.event_type",
    ),
    "goal/unknown-type": Case(
        "DefineJourney",
        changed(JOURNEY, lambda r: setattr(r.journey.goal, "event_type", 77)),
        "journey.goal.event_type",
    ),
    "goal/list-without-lists": Case(
        "DefineJourney", journey_goal(goal("CONTACT_ADDED_TO_LIST")), "journey.goal.list_ids"
    ),
    "goal/form-without-forms": Case(
        "DefineJourney", journey_goal(goal("FORM_SUBMITTED")), "journey.goal.form_ids"
    ),
    "goal/contact-updated-without-attribute": Case(
        "DefineJourney", journey_goal(goal("CONTACT_UPDATED")), "journey.goal.attribute_name"
    ),
    "goal/page-without-urls": Case(
        "DefineJourney",
        journey_goal(goal("WEBSITE_PAGE_VISITED")),
        "journey.goal.url_patterns",
    ),
    "goal/message-goal-without-messages": Case(
        "DefineJourney", journey_goal(goal("SMS_CLICKED")), "journey.goal.message_ids"
    ),
    "goal/filter-of-another-type": Case(
        "DefineJourney",
        journey_goal(goal("ORDER_PLACED", list_ids=["l1"])),
        "journey.goal.list_ids",
    ),
    "goal/attribute-value-of-another-type": Case(
        "DefineJourney",
        journey_goal(goal("ORDER_PLACED", attribute_value="x")),
        "journey.goal.attribute_value",
    ),
    "goal/wildcard-in-the-middle": Case(
        "DefineJourney",
        journey_goal(goal("WEBSITE_PAGE_VISITED", url_patterns=["https://a/*/b"])),
        "journey.goal.url_patterns[0]",
    ),
    "goal/oversized-list-id": Case(
        "DefineJourney",
        journey_goal(goal("CONTACT_ADDED_TO_LIST", list_ids=["ok", LONG_ID])),
        "journey.goal.list_ids[1]",
    ),
    # reads of journeys
    "get-journey/missing-id": Case("GetJourney", pb.GetJourneyRequest(), "journey_id"),
    "list-journeys/page-size-501": Case(
        "ListJourneys", pb.ListJourneysRequest(page_size=501), "page_size"
    ),
    "list-journeys/negative-page-size": Case(
        "ListJourneys", pb.ListJourneysRequest(page_size=-1), "page_size"
    ),
    # DefineConversion and ListConversions
    "conversion/missing-request-id": Case(
        "DefineConversion",
        changed(CONVERSION, lambda r: setattr(r, "request_id", "")),
        "request_id",
    ),
    "conversion/missing-conversion": Case(
        "DefineConversion", changed(CONVERSION, lambda r: r.ClearField("conversion")), "conversion"
    ),
    "conversion/missing-id": Case(
        "DefineConversion",
        changed(CONVERSION, lambda r: setattr(r.conversion, "conversion_id", "")),
        "conversion.conversion_id",
    ),
    "conversion/blank-name": Case(
        "DefineConversion",
        changed(CONVERSION, lambda r: setattr(r.conversion, "name", "  ")),
        "conversion.name",
    ),
    "conversion/oversized-name": Case(
        "DefineConversion",
        changed(CONVERSION, lambda r: setattr(r.conversion, "name", LONG_ID)),
        "conversion.name",
    ),
    "conversion/lower-case-currency": Case(
        "DefineConversion",
        changed(CONVERSION, lambda r: setattr(r.conversion.value, "currency_code", "eur")),
        "conversion.value.currency_code",
    ),
    "conversion/trigger-without-filter": Case(
        "DefineConversion",
        changed(
            CONVERSION,
            lambda r: r.conversion.trigger.CopyFrom(goal("CONTACT_ADDED_TO_LIST")),
        ),
        "conversion.trigger.list_ids",
    ),
    "list-conversions/page-size-501": Case(
        "ListConversions",
        pb.ListConversionsRequest(journey_id="welcome", page_size=501),
        "page_size",
    ),
    "list-conversions/missing-journey-id": Case(
        "ListConversions", pb.ListConversionsRequest(), "journey_id"
    ),
    # EnterJourney, ExitJourney, GetEnrollment
    "enter/missing-enrollment-id": Case(
        "EnterJourney",
        changed(ENTER, lambda r: setattr(r.enrollment, "enrollment_id", "")),
        "enrollment.enrollment_id",
    ),
    "enter/oversized-contact-id": Case(
        "EnterJourney",
        changed(ENTER, lambda r: setattr(r.enrollment, "contact_id", LONG_ID)),
        "enrollment.contact_id",
    ),
    "enter/control-character-in-journey-id": Case(
        "EnterJourney",
        changed(ENTER, lambda r: setattr(r.enrollment, "journey_id", "wel\ncome")),
        "enrollment.journey_id",
    ),
    "enter/version-zero": Case(
        "EnterJourney",
        changed(ENTER, lambda r: setattr(r.enrollment, "version", 0)),
        "enrollment.version",
    ),
    "enter/missing-enter-time": Case(
        "EnterJourney",
        changed(ENTER, lambda r: r.enrollment.ClearField("enter_time")),
        "enrollment.enter_time",
    ),
    "enter/enter-time-beyond-lateness": Case(
        "EnterJourney",
        changed(ENTER, lambda r: r.enrollment.enter_time.CopyFrom(ago(**TOO_OLD))),
        "enrollment.enter_time",
    ),
    "enter/enter-time-beyond-skew": Case(
        "EnterJourney",
        changed(ENTER, lambda r: r.enrollment.enter_time.CopyFrom(ago(**TOO_NEW))),
        "enrollment.enter_time",
    ),
    "exit/missing-enrollment-id": Case(
        "ExitJourney", changed(EXIT, lambda r: setattr(r, "enrollment_id", "")), "enrollment_id"
    ),
    "exit/missing-exit-time": Case(
        "ExitJourney", changed(EXIT, lambda r: r.ClearField("exit_time")), "exit_time"
    ),
    "exit/exit-time-beyond-lateness": Case(
        "ExitJourney",
        changed(EXIT, lambda r: r.exit_time.CopyFrom(ago(**TOO_OLD))),
        "exit_time",
    ),
    "exit/missing-reason": Case(
        "ExitJourney", changed(EXIT, lambda r: setattr(r, "exit_reason", 0)), "exit_reason"
    ),
    "exit/unknown-reason": Case(
        "ExitJourney", changed(EXIT, lambda r: setattr(r, "exit_reason", 9)), "exit_reason"
    ),
    "get-enrollment/missing-id": Case("GetEnrollment", pb.GetEnrollmentRequest(), "enrollment_id"),
    # RecordTouchpoint
    "touchpoint/missing-event-id": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint, "event_id", "")),
        "touchpoint.event_id",
    ),
    "touchpoint/oversized-event-id": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint, "event_id", LONG_ID)),
        "touchpoint.event_id",
    ),
    "touchpoint/missing-contact-id": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint, "contact_id", "")),
        "touchpoint.contact_id",
    ),
    "touchpoint/missing-journey-id": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint, "journey_id", "")),
        "touchpoint.journey_id",
    ),
    "touchpoint/missing-message-id": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint, "message_id", "")),
        "touchpoint.message_id",
    ),
    "touchpoint/negative-version": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint, "version", -1)),
        "touchpoint.version",
    ),
    "touchpoint/missing-channel": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint, "channel", 0)),
        "touchpoint.channel",
    ),
    "touchpoint/unknown-channel": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint, "channel", 99)),
        "touchpoint.channel",
    ),
    "touchpoint/missing-action": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint, "action", 0)),
        "touchpoint.action",
    ),
    "touchpoint/unknown-action": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint, "action", 99)),
        "touchpoint.action",
    ),
    "touchpoint/action-of-another-channel": Case(
        "RecordTouchpoint",
        changed(
            TOUCH, lambda r: setattr(r.touchpoint, "action", events_pb2.TOUCHPOINT_ACTION_READ)
        ),
        "touchpoint.action",
    ),
    "touchpoint/machine-generated-delivery": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint, "machine_generated", True)),
        "touchpoint.machine_generated",
    ),
    "touchpoint/missing-occur-time": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: r.touchpoint.ClearField("occur_time")),
        "touchpoint.occur_time",
    ),
    "touchpoint/occur-time-beyond-lateness": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: r.touchpoint.occur_time.CopyFrom(ago(**TOO_OLD))),
        "touchpoint.occur_time",
    ),
    "touchpoint/occur-time-beyond-skew": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: r.touchpoint.occur_time.CopyFrom(ago(**TOO_NEW))),
        "touchpoint.occur_time",
    ),
    "touchpoint/negative-nanos": Case(
        "RecordTouchpoint",
        changed(TOUCH, lambda r: setattr(r.touchpoint.occur_time, "nanos", -1)),
        "touchpoint.occur_time",
    ),
    # RecordGoalEvent
    "goal-event/missing-event-id": Case(
        "RecordGoalEvent",
        changed(GOAL_EVENT, lambda r: setattr(r.goal_event, "event_id", "")),
        "goal_event.event_id",
    ),
    "goal-event/oversized-contact-id": Case(
        "RecordGoalEvent",
        changed(GOAL_EVENT, lambda r: setattr(r.goal_event, "contact_id", LONG_ID)),
        "goal_event.contact_id",
    ),
    "goal-event/missing-type": Case(
        "RecordGoalEvent",
        changed(GOAL_EVENT, lambda r: setattr(r.goal_event, "event_type", 0)),
        "goal_event.event_type",
    ),
    "goal-event/unknown-type": Case(
        "RecordGoalEvent",
        changed(GOAL_EVENT, lambda r: setattr(r.goal_event, "event_type", 20)),
        "goal_event.event_type",
    ),
    "goal-event/missing-occur-time": Case(
        "RecordGoalEvent",
        changed(GOAL_EVENT, lambda r: r.goal_event.ClearField("occur_time")),
        "goal_event.occur_time",
    ),
    "goal-event/occur-time-beyond-lateness": Case(
        "RecordGoalEvent",
        changed(GOAL_EVENT, lambda r: r.goal_event.occur_time.CopyFrom(ago(**TOO_OLD))),
        "goal_event.occur_time",
    ),
    "goal-event/occur-time-beyond-skew": Case(
        "RecordGoalEvent",
        changed(GOAL_EVENT, lambda r: r.goal_event.occur_time.CopyFrom(ago(**TOO_NEW))),
        "goal_event.occur_time",
    ),
    "goal-event/list-id-on-an-order": Case(
        "RecordGoalEvent",
        goal_type("ORDER_PLACED", list_id="l1"),
        "goal_event.list_id",
    ),
    "goal-event/url-on-a-form": Case(
        "RecordGoalEvent",
        goal_type("FORM_SUBMITTED", form_id="f1", url="https://x"),
        "goal_event.url",
    ),
    "goal-event/products-on-a-page-visit": Case(
        "RecordGoalEvent",
        goal_type("WEBSITE_PAGE_VISITED", url="https://x", product_ids=["p"]),
        "goal_event.product_ids",
    ),
    "goal-event/attribute-value-on-a-list": Case(
        "RecordGoalEvent",
        goal_type("CONTACT_ADDED_TO_LIST", list_id="l1", attribute_value="v"),
        "goal_event.attribute_value",
    ),
    "goal-event/contact-updated-without-attribute": Case(
        "RecordGoalEvent", goal_type("CONTACT_UPDATED"), "goal_event.attribute_name"
    ),
    "goal-event/list-without-list-id": Case(
        "RecordGoalEvent", goal_type("CONTACT_ADDED_TO_LIST"), "goal_event.list_id"
    ),
    "goal-event/message-event-without-message": Case(
        "RecordGoalEvent", goal_type("EMAIL_CLICKED"), "goal_event.message_id"
    ),
    "goal-event/page-visit-without-url": Case(
        "RecordGoalEvent", goal_type("WEBSITE_PAGE_VISITED"), "goal_event.url"
    ),
    "goal-event/form-without-form-id": Case(
        "RecordGoalEvent", goal_type("FORM_SUBMITTED"), "goal_event.form_id"
    ),
    "goal-event/four-letter-currency": Case(
        "RecordGoalEvent",
        goal_type("ORDER_PLACED", value=journey_pb2.Money(currency_code="EURO", amount_micros=1)),
        "goal_event.value.currency_code",
    ),
    "goal-event/missing-currency": Case(
        "RecordGoalEvent",
        goal_type("ORDER_PLACED", value=journey_pb2.Money(amount_micros=1)),
        "goal_event.value.currency_code",
    ),
    "goal-event/oversized-product-id": Case(
        "RecordGoalEvent",
        goal_type("ORDER_PLACED", product_ids=["ok", LONG_ID]),
        "goal_event.product_ids[1]",
    ),
    # batches as a whole
    "batch-goal-events/empty": Case(
        "BatchRecordGoalEvents", pb.BatchRecordGoalEventsRequest(), "goal_events"
    ),
    "batch-goal-events/1001": Case(
        "BatchRecordGoalEvents",
        pb.BatchRecordGoalEventsRequest(
            goal_events=[
                goal_event(f"g{n}", "c1", "ORDER_PLACED", ago(minutes=n)) for n in range(1001)
            ]
        ),
        "goal_events",
    ),
    "batch-touchpoints/empty": Case(
        "BatchRecordTouchpoints", pb.BatchRecordTouchpointsRequest(), "touchpoints"
    ),
    # steps
    "mark/missing-event-id": Case(
        "MarkConversion", changed(MARK, lambda r: setattr(r, "event_id", "")), "event_id"
    ),
    "mark/missing-conversion-id": Case(
        "MarkConversion",
        changed(MARK, lambda r: setattr(r, "conversion_id", "")),
        "conversion_id",
    ),
    "mark/missing-mark-time": Case(
        "MarkConversion", changed(MARK, lambda r: r.ClearField("mark_time")), "mark_time"
    ),
    "mark/mark-time-beyond-skew": Case(
        "MarkConversion",
        changed(MARK, lambda r: r.mark_time.CopyFrom(ago(**TOO_NEW))),
        "mark_time",
    ),
    "evaluate/missing-enrollment-id": Case(
        "EvaluateGoal",
        changed(EVALUATE, lambda r: setattr(r, "enrollment_id", "")),
        "enrollment_id",
    ),
    "evaluate/missing-evaluate-time": Case(
        "EvaluateGoal",
        changed(EVALUATE, lambda r: r.ClearField("evaluate_time")),
        "evaluate_time",
    ),
    # reads
    "explain/missing-event-id": Case("ExplainGoalEvent", pb.ExplainGoalEventRequest(), "event_id"),
    "awards/missing-journey-id": Case(
        "ListConversionAwards", pb.ListConversionAwardsRequest(), "journey_id"
    ),
    "awards/page-size-501": Case(
        "ListConversionAwards",
        pb.ListConversionAwardsRequest(journey_id="welcome", page_size=501),
        "page_size",
    ),
    "stream/negative-after-position": Case(
        "StreamConversionEvents",
        pb.StreamConversionEventsRequest(after_position=-1),
        "after_position",
    ),
    "report/missing-journey-id": Case(
        "GetJourneyReport", pb.GetJourneyReportRequest(), "journey_id"
    ),
    "report/negative-version": Case(
        "GetJourneyReport", changed(REPORT, lambda r: setattr(r, "version", -1)), "version"
    ),
    "report/end-before-start": Case(
        "GetJourneyReport",
        changed(
            REPORT,
            lambda r: (r.start_time.CopyFrom(ago(hours=1)), r.end_time.CopyFrom(ago(hours=2))),
        ),
        "end_time",
    ),
    # the tenant header
    "tenant/spaces-and-punctuation": Case(
        "GetJourney",
        pb.GetJourneyRequest(journey_id="welcome"),
        "x-tenant-id",
        (("x-tenant-id", "bad tenant!"),),
    ),
    "tenant/leading-dash": Case(
        "RecordTouchpoint", TOUCH, "x-tenant-id", (("x-tenant-id", "-acme"),)
    ),
    "tenant/65-characters": Case(
        "DefineJourney", JOURNEY, "x-tenant-id", (("x-tenant-id", "a" * 65),)
    ),
}


async def call(
    stub: Stub, method: str, request: Message, metadata: tuple[tuple[str, str], ...] = ()
) -> None:
    """Calls one RPC of the stub; a stream is read to its end."""
    rpc: Any = getattr(stub, method)
    if method == "StreamConversionEvents":
        async for _ in rpc(request, metadata=metadata):
            pass
        return
    await rpc(request, metadata=metadata)


class TestValidationMatrix:
    """Each broken rule gives INVALID_ARGUMENT with exactly one violation, on the right field."""

    @pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
    async def test_rule_gives_invalid_argument_on_its_field(
        self, shared_stub: Stub, case: Case
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(shared_stub, case.method, case.request, case.metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert error_reason(caught.value) == "INVALID_ARGUMENT"
        violations = field_violations(caught.value)
        assert list(violations) == [case.field]
        assert violations[case.field]
        assert case.field in (caught.value.details() or "")

    async def test_every_wrong_field_of_a_request_is_reported_at_once(
        self, shared_stub: Stub
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await shared_stub.RecordTouchpoint(
                pb.RecordTouchpointRequest(touchpoint=events_pb2.Touchpoint(event_id=LONG_ID))
            )
        assert set(field_violations(caught.value)) == {
            "touchpoint.event_id",
            "touchpoint.contact_id",
            "touchpoint.journey_id",
            "touchpoint.message_id",
            "touchpoint.channel",
            "touchpoint.action",
            "touchpoint.occur_time",
        }

    async def test_valid_requests_of_the_matrix_pass_validation(self, shared_stub: Stub) -> None:
        """The base requests are valid: they fail later, if at all, for another reason."""
        tenant = (("x-tenant-id", f"v-{uuid.uuid4().hex[:8]}"),)
        await shared_stub.DefineJourney(JOURNEY, metadata=tenant)
        await shared_stub.DefineConversion(CONVERSION, metadata=tenant)
        await shared_stub.EnterJourney(ENTER, metadata=tenant)
        await shared_stub.RecordTouchpoint(TOUCH, metadata=tenant)
        await shared_stub.RecordGoalEvent(GOAL_EVENT, metadata=tenant)
        await shared_stub.MarkConversion(MARK, metadata=tenant)
        await shared_stub.EvaluateGoal(EVALUATE, metadata=tenant)
        await shared_stub.ExitJourney(EXIT, metadata=tenant)
        await shared_stub.GetJourneyReport(REPORT, metadata=tenant)


class TestNeverInternal:
    """Input a client can send never makes the server fail with INTERNAL."""

    @pytest.mark.parametrize(
        ("method", "request_"),
        [
            (
                "DefineJourney",
                changed(JOURNEY, lambda r: setattr(r.journey, "display_name", "a\0b")),
            ),
            (
                "RecordGoalEvent",
                goal_type("WEBSITE_PAGE_VISITED", url="https://x/\0"),
            ),
            ("ListJourneys", pb.ListJourneysRequest(page_token=NUL_TOKEN)),
        ],
        ids=["journey-display-name", "goal-event-url", "page-token-key"],
    )
    async def test_nul_character_in_text_is_invalid_argument(
        self, shared_stub: Stub, method: str, request_: Message
    ) -> None:
        tenant = (("x-tenant-id", f"n-{uuid.uuid4().hex[:8]}"),)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(shared_stub, method, request_, tenant)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    @pytest.mark.parametrize(
        ("method", "request_"),
        [
            (
                "RecordTouchpoint",
                changed(TOUCH, lambda r: r.touchpoint.occur_time.CopyFrom(stamp(10**13))),
            ),
            (
                "GetJourneyReport",
                changed(REPORT, lambda r: r.start_time.CopyFrom(stamp(-(10**13)))),
            ),
        ],
        ids=["touchpoint-year-300000", "report-start-before-year-1"],
    )
    async def test_timestamp_outside_the_protobuf_range_is_invalid_argument(
        self, shared_stub: Stub, method: str, request_: Message
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(shared_stub, method, request_)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    async def test_duration_outside_the_protobuf_range_is_invalid_argument(
        self, shared_stub: Stub
    ) -> None:
        request = changed(
            JOURNEY, lambda r: setattr(r.journey.attribution_window, "seconds", 10**17)
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(shared_stub, "DefineJourney", request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert list(field_violations(caught.value)) == ["journey.attribution_window"]
