"""Tenant isolation under API keys, RPC by RPC: a matrix over every RPC of the service.

Tenant B builds real data with its own admin key: a journey with a message and a goal, two
named conversions, an enrollment, a touchpoint, a converting goal event and a repeat, a Convert
step and an Evaluate-goal step. Tenant A, with its own admin key, then makes each call of CASES
twice: naming B's ids (B_IDS), and naming ids that exist in no tenant (ABSENT_IDS). The matrix
proves, for every RPC:

- A never gets B's data: a read answers NOT_FOUND or an empty result; a write naming B's
  journey or enrollment answers NOT_FOUND (a batch: each item REJECTED NOT_FOUND); a write
  reusing B's event ids or idempotency keys records A's own data;
- A cannot even tell that B's ids exist: the reply to B's ids equals the reply to absent ids
  (status code, message and error details with their ErrorInfo reason, or the response) once
  the ids are swapped;
- nothing A sends changes what B sees: B's own reads answer the same before and after;
- an x-tenant-id header naming B, sent with A's key, is refused, exactly as one naming a
  tenant that does not exist.

test_every_rpc_has_a_case fails for an RPC added to the proto without a case here.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import astuple, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, cast

import grpc
import pytest
from google.protobuf import text_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from journeys.conversions.v1 import conversions_pb2, events_pb2, journey_pb2
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions.auth import METHOD_SCOPES, TENANT_HEADER
from journey_conversions.keys import Scope
from tests.builders import (
    NOW,
    ago,
    define_journey,
    enter,
    error_reason,
    exit_,
    goal,
    goal_event,
    message,
    touchpoint,
    ts,
)
from tests.keys import bearer, create_key

if TYPE_CHECKING:
    from tests.builders import Stub

OK = grpc.StatusCode.OK
A_TENANT, B_TENANT, NO_TENANT = "acme", "globex", "nobody"
STREAM_DEADLINE_SECONDS = 1.0

Metadata = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Ids:
    """The identifiers a call can name."""

    journey: str
    message: str
    conversion: str
    contact: str
    enrollment: str
    touchpoint: str
    goal_event: str
    repeat_goal_event: str
    define_request: str  # the request_id of DefineJourney
    conversion_request: str  # the request_id of DefineConversion
    mark: str  # the event_id of MarkConversion
    evaluation: str  # the event_id of EvaluateGoal


B_IDS = Ids(
    journey="b-journey",
    message="b-email",
    conversion="b-booked",
    contact="b-contact",
    enrollment="b-enrollment",
    touchpoint="b-touch",
    goal_event="b-order",
    repeat_goal_event="b-reorder",
    define_request="b-define-journey",
    conversion_request="b-define-booked",
    mark="b-mark",
    evaluation="b-evaluate",
)
# The same ids with "absent-" for "b-": none of them exists in any tenant.
ABSENT_IDS = Ids(*(value.replace("b-", "absent-", 1) for value in astuple(B_IDS)))
SWAPS = dict(zip(astuple(B_IDS), astuple(ABSENT_IDS), strict=True))


def swap(text: str, swaps: Mapping[str, str]) -> str:
    """`text` with every key of `swaps` replaced by its value, longest keys first."""
    if not swaps:
        return text
    pattern = "|".join(re.escape(key) for key in sorted(swaps, key=len, reverse=True))
    return re.sub(pattern, lambda found: swaps[found.group()], text)


# Output-only times: two equal writes made a moment apart differ in them.
CLOCK_FIELDS = frozenset({"create_time", "update_time", "commit_time"})


def without_clock(value: Message) -> Message:
    copy = type(value)()
    copy.CopyFrom(value)
    _clear_clock(copy)
    return copy


def _clear_clock(value: Message) -> None:
    for field, content in value.ListFields():
        if field.name in CLOCK_FIELDS:
            value.ClearField(field.name)
        elif field.message_type is not None and not field.message_type.GetOptions().map_entry:
            for item in content if field.is_repeated else [content]:
                _clear_clock(item)


@dataclass(frozen=True)
class Reply:
    """What a call answered: its code and, on failure, the ErrorInfo reason and the status text
    (message and details); on success, the response, or the items a stream yielded."""

    code: grpc.StatusCode
    reason: str = ""
    error: str = ""
    messages: tuple[Message, ...] = ()

    @property
    def empty(self) -> bool:
        return self.code == OK and all(m.ByteSize() == 0 for m in self.messages)

    def seen(self, swaps: Mapping[str, str]) -> tuple[str, str, str]:
        """The reply as a caller can compare it: ids swapped, output-only times dropped."""
        body = self.error or "\n".join(
            text_format.MessageToString(without_clock(m), as_one_line=True) for m in self.messages
        )
        return self.code.name, self.reason, swap(body, swaps)


def status_text(error: grpc.aio.AioRpcError) -> str:
    """The status message and every detail of a failed call."""
    status = rpc_status.from_call(cast(grpc.Call, error))
    if status is None:
        return error.details() or ""
    lines = [str(status.message)]
    for detail in status.details:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.BadRequest):
            if detail.Is(kind.DESCRIPTOR):
                unpacked = kind()
                detail.Unpack(unpacked)
                lines.append(text_format.MessageToString(unpacked, as_one_line=True))
                break
        else:
            lines.append(f"{detail.type_url} {detail.value.hex()}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Expect:
    """What A's reply to B's ids must be."""

    says: str
    holds: Callable[[Reply], bool]


def _items(reply: Reply) -> list[events_pb2.ItemResult]:
    batches = (
        pb.BatchRecordTouchpointsResponse,
        pb.BatchRecordGoalEventsResponse,
        pb.BatchEnterJourneyResponse,
        pb.BatchExitJourneyResponse,
        pb.StreamIngestResponse,
    )
    return [item for m in reply.messages if isinstance(m, batches) for item in m.results]


def _not_converted(reply: Reply) -> bool:
    outcomes = [m.outcome for m in reply.messages if isinstance(m, pb.RecordGoalEventResponse)]
    return reply.code == OK and [o.status for o in outcomes] == [
        conversions_pb2.OUTCOME_STATUS_NOT_CONVERTED
    ]


NOT_FOUND = Expect("NOT_FOUND", lambda r: r.code == grpc.StatusCode.NOT_FOUND)
EMPTY = Expect("an empty result", lambda r: r.empty)
ITEMS_NOT_FOUND = Expect(
    "OK with every item REJECTED as NOT_FOUND",
    lambda r: (
        r.code == OK
        and bool(_items(r))
        and all(
            (i.status, i.error.code) == (events_pb2.ITEM_STATUS_REJECTED, "NOT_FOUND")
            for i in _items(r)
        )
    ),
)
ITEMS_ACCEPTED = Expect(
    "OK with every item ACCEPTED, as A's own",
    lambda r: (
        r.code == OK
        and bool(_items(r))
        and all(i.status == events_pb2.ITEM_STATUS_ACCEPTED for i in _items(r))
    ),
)
NOT_CONVERTED = Expect("OK: A's own goal event, which converts nowhere", _not_converted)
DEFINED = Expect("OK: A's own definition", lambda r: r.code == OK)

Caller = Callable[["Stub", Ids, Metadata], Awaitable[Message | Sequence[Message]]]


@dataclass(frozen=True)
class Case:
    """One RPC, called as `call(stub, ids, metadata)`: with B_IDS it names B's data, with
    ABSENT_IDS data no tenant has."""

    rpc: str
    expect: Expect
    call: Caller


async def read_stream(stub: Stub, metadata: Metadata) -> list[pb.StreamConversionEventsResponse]:
    """Every event the stream yields from position 0 within the deadline; DEADLINE_EXCEEDED is
    how a caught-up stream ends here."""
    items: list[pb.StreamConversionEventsResponse] = []
    call = stub.StreamConversionEvents(
        pb.StreamConversionEventsRequest(after_position=0),
        metadata=metadata,
        timeout=STREAM_DEADLINE_SECONDS,
    )
    try:
        async for item in call:
            items.append(item)
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise
    return items


async def stream_ingest(
    stub: Stub, metadata: Metadata, *requests: pb.StreamIngestRequest
) -> list[pb.StreamIngestResponse]:
    """Every response of a StreamIngest stream that sends the requests, then half-closes."""
    call = stub.StreamIngest(metadata=metadata, timeout=30)
    await call.initial_metadata()  # accepted: writing cannot race a refusal
    if not call.done():
        for request in requests:
            await call.write(request)
        await call.done_writing()
    return [item async for item in call]


def report_request(journey_id: str) -> pb.GetJourneyReportRequest:
    """A fixed range, so that equal data gives equal reports."""
    return pb.GetJourneyReportRequest(
        journey_id=journey_id, start_time=ago(days=30), end_time=ts(NOW + timedelta(days=1))
    )


def define_conversion(
    ids: Ids, name: str, value: journey_pb2.Money | None = None
) -> pb.DefineConversionRequest:
    return pb.DefineConversionRequest(
        request_id=ids.conversion_request,
        conversion=conversions_pb2.ConversionDefinition(
            conversion_id=ids.conversion, journey_id=ids.journey, name=name, value=value
        ),
    )


def mark(ids: Ids, hours_ago: float) -> pb.MarkConversionRequest:
    return pb.MarkConversionRequest(
        event_id=ids.mark,
        enrollment_id=ids.enrollment,
        conversion_id=ids.conversion,
        step_id="convert",
        mark_time=ago(hours=hours_ago),
    )


def evaluate(ids: Ids, hours_ago: float) -> pb.EvaluateGoalRequest:
    return pb.EvaluateGoalRequest(
        event_id=ids.evaluation,
        enrollment_id=ids.enrollment,
        step_id="evaluate",
        evaluate_time=ago(hours=hours_ago),
    )


# A's payloads differ from B's, so that an idempotency key shared across tenants would show
# as ALREADY_EXISTS or as B's first response.
def a_journey(ids: Ids) -> pb.DefineJourneyRequest:
    return define_journey(
        ids.journey,
        [message(ids.message, "SMS")],
        goal("FORM_SUBMITTED", form_ids=["a-form"]),
        request_id=ids.define_request,
    )


def a_touchpoint(ids: Ids) -> events_pb2.Touchpoint:
    return touchpoint(ids.touchpoint, ids.contact, ids.journey, ids.message, ago(hours=4), "SMS")


def a_goal_event(ids: Ids) -> events_pb2.GoalEvent:
    return goal_event(ids.goal_event, ids.contact, "FORM_SUBMITTED", ago(hours=1), form_id="a-form")


# The matrix, in the order the test runs it: reads while A has no data at all, then writes
# that must fail, then writes that create A's own data under B's ids.
CASES: tuple[Case, ...] = (
    # Reads: nothing of B's, and B's ids answered as absent ones.
    Case(
        "GetJourney",
        NOT_FOUND,
        lambda s, i, m: s.GetJourney(pb.GetJourneyRequest(journey_id=i.journey), metadata=m),
    ),
    Case(
        "ListJourneys", EMPTY, lambda s, i, m: s.ListJourneys(pb.ListJourneysRequest(), metadata=m)
    ),
    Case(
        "ListConversions",
        NOT_FOUND,
        lambda s, i, m: s.ListConversions(
            pb.ListConversionsRequest(journey_id=i.journey), metadata=m
        ),
    ),
    Case(
        "GetEnrollment",
        NOT_FOUND,
        lambda s, i, m: s.GetEnrollment(
            pb.GetEnrollmentRequest(enrollment_id=i.enrollment), metadata=m
        ),
    ),
    Case(
        "ListEnrollments",
        EMPTY,
        lambda s, i, m: s.ListEnrollments(
            pb.ListEnrollmentsRequest(contact_id=i.contact), metadata=m
        ),
    ),
    Case(
        "ExplainGoalEvent",
        NOT_FOUND,
        lambda s, i, m: s.ExplainGoalEvent(
            pb.ExplainGoalEventRequest(event_id=i.goal_event), metadata=m
        ),
    ),
    Case(
        "ListConversionAwards",
        NOT_FOUND,
        lambda s, i, m: s.ListConversionAwards(
            pb.ListConversionAwardsRequest(journey_id=i.journey, contact_id=i.contact),
            metadata=m,
        ),
    ),
    Case(
        "GetJourneyReport",
        NOT_FOUND,
        lambda s, i, m: s.GetJourneyReport(report_request(i.journey), metadata=m),
    ),
    Case("StreamConversionEvents", EMPTY, lambda s, i, m: read_stream(s, m)),
    # Writes naming B's journey or enrollment: NOT_FOUND.
    Case(
        "DefineConversion",
        NOT_FOUND,
        lambda s, i, m: s.DefineConversion(define_conversion(i, "Booked call"), metadata=m),
    ),
    Case(
        "EnterJourney",
        NOT_FOUND,
        lambda s, i, m: s.EnterJourney(
            enter(i.enrollment, i.contact, i.journey, ago(hours=5)), metadata=m
        ),
    ),
    Case(
        "ExitJourney",
        NOT_FOUND,
        lambda s, i, m: s.ExitJourney(exit_(i.enrollment, ago(hours=1)), metadata=m),
    ),
    Case(
        "BatchEnterJourney",
        ITEMS_NOT_FOUND,
        lambda s, i, m: s.BatchEnterJourney(
            pb.BatchEnterJourneyRequest(
                enrollments=[
                    enter(i.enrollment, i.contact, i.journey, ago(hours=5)).enrollment,
                    enter(f"{i.enrollment}-2", i.contact, i.journey, ago(hours=4)).enrollment,
                ]
            ),
            metadata=m,
        ),
    ),
    Case(
        "BatchExitJourney",
        ITEMS_NOT_FOUND,
        lambda s, i, m: s.BatchExitJourney(
            pb.BatchExitJourneyRequest(
                exits=[
                    events_pb2.EnrollmentExit(
                        enrollment_id=i.enrollment,
                        exit_time=ago(hours=1),
                        exit_reason=events_pb2.EXIT_REASON_REMOVED,
                    )
                ]
            ),
            metadata=m,
        ),
    ),
    Case(
        "RecordTouchpoint",
        NOT_FOUND,
        lambda s, i, m: s.RecordTouchpoint(
            pb.RecordTouchpointRequest(touchpoint=a_touchpoint(i)), metadata=m
        ),
    ),
    Case(
        "BatchRecordTouchpoints",
        ITEMS_NOT_FOUND,
        lambda s, i, m: s.BatchRecordTouchpoints(
            pb.BatchRecordTouchpointsRequest(touchpoints=[a_touchpoint(i)]), metadata=m
        ),
    ),
    Case(
        "StreamIngest",
        ITEMS_NOT_FOUND,
        lambda s, i, m: stream_ingest(
            s,
            m,
            pb.StreamIngestRequest(
                sequence=1,
                enrollments=pb.BatchEnterJourneyRequest(
                    enrollments=[enter(i.enrollment, i.contact, i.journey, ago(hours=5)).enrollment]
                ),
            ),
            pb.StreamIngestRequest(
                sequence=2,
                touchpoints=pb.BatchRecordTouchpointsRequest(touchpoints=[a_touchpoint(i)]),
            ),
            pb.StreamIngestRequest(
                sequence=3,
                exits=pb.BatchExitJourneyRequest(
                    exits=[
                        events_pb2.EnrollmentExit(
                            enrollment_id=i.enrollment,
                            exit_time=ago(hours=1),
                            exit_reason=events_pb2.EXIT_REASON_REMOVED,
                        )
                    ]
                ),
            ),
        ),
    ),
    Case("MarkConversion", NOT_FOUND, lambda s, i, m: s.MarkConversion(mark(i, 2), metadata=m)),
    Case("EvaluateGoal", NOT_FOUND, lambda s, i, m: s.EvaluateGoal(evaluate(i, 1), metadata=m)),
    # Writes reusing B's event ids and request ids: A's own records, as with ids no one has.
    Case(
        "BatchRecordGoalEvents",
        ITEMS_ACCEPTED,
        lambda s, i, m: s.BatchRecordGoalEvents(
            pb.BatchRecordGoalEventsRequest(
                goal_events=[
                    goal_event(i.repeat_goal_event, i.contact, "ORDER_PLACED", ago(hours=2))
                ]
            ),
            metadata=m,
        ),
    ),
    Case(
        "RecordGoalEvent",
        NOT_CONVERTED,
        lambda s, i, m: s.RecordGoalEvent(
            pb.RecordGoalEventRequest(goal_event=a_goal_event(i)), metadata=m
        ),
    ),
    Case("DefineJourney", DEFINED, lambda s, i, m: s.DefineJourney(a_journey(i), metadata=m)),
)
READS = tuple(case for case in CASES if METHOD_SCOPES[case.rpc] == Scope.READ)


async def reply(case: Case, stub: Stub, ids: Ids, metadata: Metadata) -> Reply:
    try:
        answer = await case.call(stub, ids, metadata)
    except grpc.aio.AioRpcError as error:
        return Reply(error.code(), error_reason(error), status_text(error))
    return Reply(OK, messages=(answer,) if isinstance(answer, Message) else tuple(answer))


async def view(stub: Stub, metadata: Metadata) -> dict[str, Reply]:
    """Every read of B's ids, as the caller sees it."""
    return {case.rpc: await reply(case, stub, B_IDS, metadata) for case in READS}


async def build_b(stub: Stub, b: Metadata) -> None:
    """B's data, each step checked: without it the matrix would prove nothing."""
    i = B_IDS
    await stub.DefineJourney(
        define_journey(
            i.journey, [message(i.message)], goal("ORDER_PLACED"), request_id=i.define_request
        ),
        metadata=b,
    )
    euros = journey_pb2.Money(currency_code="EUR", amount_micros=25_000_000)
    await stub.DefineConversion(define_conversion(i, "Booked meeting", euros), metadata=b)
    await stub.DefineConversion(
        pb.DefineConversionRequest(
            request_id="b-define-bonus",
            conversion=conversions_pb2.ConversionDefinition(
                conversion_id="b-bonus", journey_id=i.journey, name="Goal bonus", award_on_goal=True
            ),
        ),
        metadata=b,
    )
    await stub.EnterJourney(enter(i.enrollment, i.contact, i.journey, ago(days=3)), metadata=b)
    await stub.RecordTouchpoint(
        pb.RecordTouchpointRequest(
            touchpoint=touchpoint(i.touchpoint, i.contact, i.journey, i.message, ago(days=2))
        ),
        metadata=b,
    )
    order = await stub.RecordGoalEvent(
        pb.RecordGoalEventRequest(
            goal_event=goal_event(i.goal_event, i.contact, "ORDER_PLACED", ago(days=1))
        ),
        metadata=b,
    )
    assert (order.outcome.status, order.outcome.enrollment_id) == (
        conversions_pb2.OUTCOME_STATUS_CONVERTED,
        i.enrollment,
    )
    repeat = await stub.BatchRecordGoalEvents(
        pb.BatchRecordGoalEventsRequest(
            goal_events=[goal_event(i.repeat_goal_event, i.contact, "ORDER_PLACED", ago(hours=12))]
        ),
        metadata=b,
    )
    assert [r.status for r in repeat.results] == [events_pb2.ITEM_STATUS_ACCEPTED]
    marked = await stub.MarkConversion(mark(i, 6), metadata=b)
    assert marked.award.conversion_id == i.conversion
    evaluated = await stub.EvaluateGoal(evaluate(i, 3), metadata=b)
    assert (evaluated.goal_met, evaluated.credit) == (True, pb.GOAL_CREDIT_THIS_JOURNEY)
    assert [a.conversion_id for a in evaluated.awards] == ["b-bonus"]


@dataclass(frozen=True)
class Tenants:
    """One keyed server; A's and B's admin keys as metadata. B has its data, A has none."""

    stub: Stub
    a: Metadata
    b: Metadata


@pytest.fixture
async def tenants(keyed_stub: Stub, database_url: str) -> Tenants:
    _, a_token = await create_key(database_url, A_TENANT)
    _, b_token = await create_key(database_url, B_TENANT)
    both = Tenants(keyed_stub, bearer(a_token), bearer(b_token))
    await build_b(both.stub, both.b)
    return both


def test_every_rpc_has_a_case() -> None:
    service = pb.DESCRIPTOR.services_by_name["JourneyConversionsService"]
    rpcs = [case.rpc for case in CASES]
    assert sorted(rpcs) == sorted(method.name for method in service.methods)
    assert len(rpcs) == len(set(rpcs))


async def test_a_gets_for_b_ids_what_it_gets_for_absent_ids(tenants: Tenants) -> None:
    stub, a, b = tenants.stub, tenants.a, tenants.b
    before = await view(stub, b)
    assert [rpc for rpc, seen in before.items() if seen.code != OK or seen.empty] == []

    problems: list[str] = []
    for case in CASES:
        foreign = await reply(case, stub, B_IDS, a)
        absent = await reply(case, stub, ABSENT_IDS, a)
        if not case.expect.holds(foreign):
            problems.append(
                f"{case.rpc} naming B's ids: expected {case.expect.says}, got {foreign.seen({})}"
            )
        if foreign.seen(SWAPS) != absent.seen({}):
            problems.append(
                f"{case.rpc} tells B's ids from absent ones: for B's ids {foreign.seen({})},"
                f" for absent ids {absent.seen({})}"
            )

    after = await view(stub, b)
    for rpc, seen in before.items():
        if after[rpc] != seen:
            problems.append(
                f"A's calls changed B's {rpc}: {seen.seen({})} -> {after[rpc].seen({})}"
            )
    assert not problems, "\n".join(problems)


async def test_a_stream_has_none_of_b_events(tenants: Tenants) -> None:
    theirs = [item.event for item in await read_stream(tenants.stub, tenants.b)]
    assert [e.position for e in theirs] == list(range(1, len(theirs) + 1))
    assert {e.award.journey_id for e in theirs} == {B_IDS.journey}
    assert {e.award.source for e in theirs} >= {
        conversions_pb2.AWARD_SOURCE_ATTRIBUTION,
        conversions_pb2.AWARD_SOURCE_CONVERT_STEP,
        conversions_pb2.AWARD_SOURCE_EVALUATE_GOAL_STEP,
    }
    assert await read_stream(tenants.stub, tenants.a) == []


async def test_a_key_with_a_header_naming_b_is_refused(tenants: Tenants) -> None:
    stub, a, b = tenants.stub, tenants.a, tenants.b
    # Naming one's own tenant is accepted: what is refused is naming another.
    own = await stub.ListJourneys(
        pb.ListJourneysRequest(), metadata=(*a, (TENANT_HEADER, A_TENANT))
    )
    assert list(own.journeys) == []
    before = await view(stub, b)

    swaps = {**SWAPS, B_TENANT: NO_TENANT}
    problems: list[str] = []
    for case in CASES:
        foreign = await reply(case, stub, B_IDS, (*a, (TENANT_HEADER, B_TENANT)))
        nobody = await reply(case, stub, ABSENT_IDS, (*a, (TENANT_HEADER, NO_TENANT)))
        if foreign.code != grpc.StatusCode.PERMISSION_DENIED or foreign.messages:
            problems.append(f"{case.rpc} with x-tenant-id {B_TENANT}: {foreign.seen({})}")
        if foreign.seen(swaps) != nobody.seen({}):
            problems.append(
                f"{case.rpc} tells tenant {B_TENANT} from {NO_TENANT}: {foreign.seen({})}"
                f" vs {nobody.seen({})}"
            )
    assert not problems, "\n".join(problems)
    assert await view(stub, b) == before


async def test_defining_with_b_ids_makes_a_own_journey_and_conversion(tenants: Tenants) -> None:
    stub, a, b = tenants.stub, tenants.a, tenants.b
    i = B_IDS
    before = await view(stub, b)

    defined = await stub.DefineJourney(a_journey(i), metadata=a)
    messages = defined.journey.versions[0].messages
    assert [(m.message_id, m.channel) for m in messages] == [(i.message, journey_pb2.CHANNEL_SMS)]
    got = await stub.GetJourney(pb.GetJourneyRequest(journey_id=i.journey), metadata=a)
    assert got.journey == defined.journey
    conversion = await stub.DefineConversion(define_conversion(i, "Booked call"), metadata=a)
    # A new conversion of A's (revision 1), with no warning naming B's "Booked meeting".
    assert (conversion.conversion.name, conversion.conversion.revision) == ("Booked call", 1)
    assert list(conversion.warnings) == []
    listed = await stub.ListConversions(pb.ListConversionsRequest(journey_id=i.journey), metadata=a)
    assert [(c.conversion_id, c.name) for c in listed.conversions] == [
        (i.conversion, "Booked call")
    ]

    # A's activity under B's ids is A's alone.
    await stub.EnterJourney(enter(i.enrollment, i.contact, i.journey, ago(hours=5)), metadata=a)
    await stub.RecordTouchpoint(pb.RecordTouchpointRequest(touchpoint=a_touchpoint(i)), metadata=a)
    recorded = await stub.RecordGoalEvent(
        pb.RecordGoalEventRequest(goal_event=a_goal_event(i)), metadata=a
    )
    assert recorded.outcome.status == conversions_pb2.OUTCOME_STATUS_CONVERTED
    assert recorded.outcome.touchpoint_time == ago(hours=4)
    marked = await stub.MarkConversion(mark(i, 0.5), metadata=a)
    assert marked.award.award_time == ago(hours=0.5)
    explained = await stub.ExplainGoalEvent(
        pb.ExplainGoalEventRequest(event_id=i.goal_event), metadata=a
    )
    assert explained.explanation.goal_event == a_goal_event(i)
    awards = await stub.ListConversionAwards(
        pb.ListConversionAwardsRequest(journey_id=i.journey), metadata=a
    )
    assert sorted((w.source, w.award_time.ToSeconds()) for w in awards.awards) == sorted(
        [
            (conversions_pb2.AWARD_SOURCE_ATTRIBUTION, ago(hours=1).ToSeconds()),
            (conversions_pb2.AWARD_SOURCE_CONVERT_STEP, ago(hours=0.5).ToSeconds()),
        ]
    )
    report = (await stub.GetJourneyReport(report_request(i.journey), metadata=a)).report
    assert (report.entered, report.goal_conversions) == (1, 1)

    assert await view(stub, b) == before
