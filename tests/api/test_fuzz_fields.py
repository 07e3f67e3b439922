"""Property-based fuzzing of every RPC with adversarial field values, through the real server.

Each example starts from a valid request of one RPC (BASES) and replaces some of its fields, at
any depth, with values a careless or hostile client could send: huge strings, control
characters and NUL, unicode edge cases, SQL-like text, timestamps and durations at and beyond
the protobuf range, unknown enum numbers, integer extremes, empty, single, maximum and
over-maximum batches, and long repeated fields. The fields come from the request's descriptor,
so a field added to a request is fuzzed without editing this file; the RPCs come from the
service descriptor, and test_every_rpc_has_a_base_request fails for a new RPC until it has one.

For every example:

- the reply is a status the contract documents (never INTERNAL, UNKNOWN or a hang; a
  conversion-event stream ends only at its own short deadline), and every error carries a
  google.rpc.ErrorInfo (plus BadRequest field violations for INVALID_ARGUMENT);
- a batch answers for every item, in order, and stores exactly the items it accepted (a
  StreamIngest message is judged as the Batch RPC of its batch's kind, and
  test_stream_ingest_answers_a_fuzzed_batch_as_its_batch_rpc sends the same fuzzed batches
  both ways);
- a failed call, and any read, leaves the tenant's rows in every table exactly as they were;
- the server still answers health checks SERVING.

Then: fuzzed writes followed by every read; text that the API stores comes back byte for byte
(the longest ids and texts in four-byte characters among the examples); a batch mixing valid
and invalid items keeps the valid ones only; the batch and message size limits give clear
errors; deterministic sweeps set every string field of every request to NUL, a huge string,
control characters and SQL, and every timestamp, duration, enum and integer field to its
extremes; and TestFoundByFuzzing keeps each bug the fuzzing found as a case of its own.
No request has a double field (only report replies do); a new one gets NaN and infinities.

Each example runs in a tenant of its own, seeded with a small world (SEED) that the valid field
values refer to, on a server and database of this module (the database is read directly to
compare a tenant's rows before and after a call).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import asyncpg
import grpc
import pytest
from google.protobuf import duration_pb2, message_factory, timestamp_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from journeys.conversions.v1 import conversions_pb2, events_pb2, journey_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import config as config_module
from journey_conversions.auth import METHOD_SCOPES
from journey_conversions.errors import MAX_LISTED_VIOLATIONS
from journey_conversions.keys import Scope
from journey_conversions.parse import (
    MAX_BATCH,
    MAX_ID_LENGTH,
    MAX_LIST_LENGTH,
    MAX_REPORT_AHEAD,
    MAX_TEXT_LENGTH,
)
from journey_conversions.server import MAX_MESSAGE_BYTES, build
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
from tests.conftest import DEV_SERVER, admin_execute, with_database
from tests.hypothesis_profiles import examples

if TYPE_CHECKING:
    from tests.builders import Stub

Metadata = tuple[tuple[str, str], ...]
_M = TypeVar("_M", bound=Message)
Code = grpc.StatusCode

SERVICE = pb.DESCRIPTOR.services_by_name["JourneyConversionsService"]
METHOD_NAMES = [m.name for m in SERVICE.methods]
# Server streams keep streaming until their deadline; a bidirectional stream gets one message,
# then half-close, and ends once it is answered.
STREAMING = {m.name for m in SERVICE.methods if m.server_streaming and not m.client_streaming}
BIDIRECTIONAL = {m.name for m in SERVICE.methods if m.client_streaming}
STREAM_INGEST = "StreamIngest"
STREAM_TIMEOUT = 0.25  # a valid stream keeps streaming; its deadline ends it
UNARY_TIMEOUT = 30.0  # far beyond any call's time: reaching it is a hang
SERVER_HEALTH_CHECKS = [
    HealthCheck.function_scoped_fixture,
    HealthCheck.too_slow,
    HealthCheck.data_too_large,
    HealthCheck.large_base_example,
]

# Every status a call may end with, whatever it is sent (RESOURCE_EXHAUSTED: a message over
# the size limit, or an overloaded server).
ALLOWED = {
    Code.OK,
    Code.INVALID_ARGUMENT,
    Code.NOT_FOUND,
    Code.ALREADY_EXISTS,
    Code.FAILED_PRECONDITION,
    Code.RESOURCE_EXHAUSTED,
}
_ALWAYS = {Code.OK, Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED}
# The errors each RPC documents in service.proto (INVALID_ARGUMENT and RESOURCE_EXHAUSTED are
# always possible). MarkConversion's FAILED_PRECONDITION (a mark time outside the enrollment)
# is implied by "it must lie within the enrollment".
DOCUMENTED: dict[str, set[Code]] = {
    "DefineJourney": {Code.FAILED_PRECONDITION, Code.ALREADY_EXISTS},
    "GetJourney": {Code.NOT_FOUND},
    "ListJourneys": set(),
    "DefineConversion": {Code.NOT_FOUND, Code.ALREADY_EXISTS},
    "ListConversions": {Code.NOT_FOUND},
    "EnterJourney": {Code.NOT_FOUND, Code.ALREADY_EXISTS},
    "ExitJourney": {Code.NOT_FOUND, Code.FAILED_PRECONDITION, Code.ALREADY_EXISTS},
    # UNAVAILABLE (documented: retry the batch) only when the database is away.
    "BatchEnterJourney": set(),
    "BatchExitJourney": set(),
    "GetEnrollment": {Code.NOT_FOUND},
    "ListEnrollments": set(),
    "RecordTouchpoint": {Code.NOT_FOUND, Code.ALREADY_EXISTS},
    "BatchRecordTouchpoints": set(),
    "RecordGoalEvent": {Code.ALREADY_EXISTS},
    "BatchRecordGoalEvents": set(),
    "MarkConversion": {Code.NOT_FOUND, Code.ALREADY_EXISTS, Code.FAILED_PRECONDITION},
    "EvaluateGoal": {Code.NOT_FOUND, Code.FAILED_PRECONDITION, Code.ALREADY_EXISTS},
    "ExplainGoalEvent": {Code.NOT_FOUND},
    "ListConversionAwards": {Code.NOT_FOUND},
    "StreamConversionEvents": {Code.DEADLINE_EXCEEDED},
    # A refused message is answered on the stream, which goes on (see as_batch).
    "StreamIngest": set(),
    # FAILED_PRECONDITION: a value total beyond Money's int64 (REPORT_VALUE_OUT_OF_RANGE).
    "GetJourneyReport": {Code.NOT_FOUND, Code.FAILED_PRECONDITION},
}
# The statuses a rejected batch item may carry (as ItemError.code).
ITEM_CODES = {"INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS", "FAILED_PRECONDITION"}
READS = {m for m in METHOD_NAMES if METHOD_SCOPES[m] == Scope.READ}


@dataclass(frozen=True)
class Batch:
    """A batch RPC: its repeated field, the item field its ItemResult.event_id repeats, and a
    query for the keys of the tenant's ($1) items it has stored."""

    field: str
    key: str
    stored: str


BATCHES = {
    "BatchRecordTouchpoints": Batch(
        "touchpoints", "event_id", "select event_id from touchpoints where tenant_id = $1"
    ),
    "BatchRecordGoalEvents": Batch(
        "goal_events", "event_id", "select event_id from goal_events where tenant_id = $1"
    ),
    "BatchEnterJourney": Batch(
        "enrollments",
        "enrollment_id",
        "select enrollment_id from enrollments where tenant_id = $1",
    ),
    "BatchExitJourney": Batch(
        "exits",
        "enrollment_id",
        "select enrollment_id from enrollments where tenant_id = $1 and exit_time is not null",
    ),
}

# --- the seeded world and one valid request per RPC -----------------------------------------

EUR = journey_pb2.Money(currency_code="EUR", amount_micros=5_000_000)
SEED: list[tuple[str, Message]] = [
    (
        "DefineJourney",
        define_journey(
            "welcome",
            [
                journey_pb2.JourneyMessage(
                    message_id="email-1", channel=journey_pb2.CHANNEL_EMAIL, step_id="s1", path="p1"
                ),
                message("sms-1", "SMS", "s2"),
                message("wa-1", "WHATSAPP", "s2"),
            ],
            goal("ORDER_PLACED"),
            request_id="seed",
        ),
    ),
    (
        "DefineConversion",
        pb.DefineConversionRequest(
            request_id="seed",
            conversion=conversions_pb2.ConversionDefinition(
                conversion_id="k1", journey_id="welcome", name="Booked meeting", value=EUR
            ),
        ),
    ),
    ("EnterJourney", enter("e1", "c1", "welcome", ago(days=2))),
    (
        "RecordTouchpoint",
        pb.RecordTouchpointRequest(
            touchpoint=touchpoint("t1", "c1", "welcome", "email-1", ago(days=1))
        ),
    ),
    (
        "RecordGoalEvent",
        pb.RecordGoalEventRequest(
            goal_event=goal_event(
                "g1", "c1", "ORDER_PLACED", ago(hours=2), product_ids=["p1"], value=EUR
            )
        ),
    ),
]


def _amending(event: events_pb2.GoalEvent, amends: str) -> events_pb2.GoalEvent:
    event.amends_event_id = amends
    return event


BASES: dict[str, Message] = {
    "DefineJourney": define_journey(
        "welcome-2",
        [message("email-9", step_id="s9"), message("wa-9", "WHATSAPP")],
        goal("EMAIL_CLICKED", message_ids=["email-9"]),
        request_id="r-define",
        window_days=7,
    ),
    "GetJourney": pb.GetJourneyRequest(journey_id="welcome"),
    "ListJourneys": pb.ListJourneysRequest(page_size=10),
    "DefineConversion": pb.DefineConversionRequest(
        request_id="r-conversion",
        conversion=conversions_pb2.ConversionDefinition(
            conversion_id="k2",
            journey_id="welcome",
            name="Signed up",
            value=journey_pb2.Money(currency_code="USD", amount_micros=1),
            trigger=goal("CONTACT_UPDATED", attribute_name="plan", attribute_value="pro"),
            award_on_goal=True,
        ),
    ),
    "ListConversions": pb.ListConversionsRequest(journey_id="welcome", page_size=10),
    "EnterJourney": enter("e2", "c2", "welcome", ago(days=1)),
    "ExitJourney": exit_("e1", ago(hours=1)),
    "BatchEnterJourney": pb.BatchEnterJourneyRequest(
        enrollments=[
            enter("e3", "c3", "welcome", ago(days=1)).enrollment,
            enter("e4", "c1", "welcome", ago(hours=3), holdout=True).enrollment,
        ]
    ),
    "BatchExitJourney": pb.BatchExitJourneyRequest(
        exits=[
            events_pb2.EnrollmentExit(
                enrollment_id="e1",
                exit_time=ago(hours=1),
                exit_reason=events_pb2.EXIT_REASON_GOAL_REACHED,
            )
        ]
    ),
    "GetEnrollment": pb.GetEnrollmentRequest(enrollment_id="e1"),
    "ListEnrollments": pb.ListEnrollmentsRequest(
        contact_id="c1", journey_id="welcome", active_time=ago(hours=1), page_size=10
    ),
    "RecordTouchpoint": pb.RecordTouchpointRequest(
        touchpoint=touchpoint("t2", "c1", "welcome", "sms-1", ago(hours=3), "SMS", "CLICKED")
    ),
    "BatchRecordTouchpoints": pb.BatchRecordTouchpointsRequest(
        touchpoints=[
            touchpoint("t3", "c1", "welcome", "wa-1", ago(hours=3), "WHATSAPP", "READ"),
            touchpoint("t4", "c2", "welcome", "email-1", ago(hours=2), action="OPENED"),
        ]
    ),
    "RecordGoalEvent": pb.RecordGoalEventRequest(
        goal_event=_amending(
            goal_event("g2", "c1", "ORDER_UPDATED", ago(hours=1), product_ids=["p1"], value=EUR),
            "g1",
        )
    ),
    "BatchRecordGoalEvents": pb.BatchRecordGoalEventsRequest(
        goal_events=[
            goal_event(
                "g3",
                "c1",
                "CONTACT_UPDATED",
                ago(hours=1),
                attribute_name="plan",
                attribute_value="pro",
            ),
            goal_event("g4", "c2", "WEBSITE_PAGE_VISITED", ago(hours=1), url="https://e.x/a"),
        ]
    ),
    "MarkConversion": pb.MarkConversionRequest(
        event_id="m1", enrollment_id="e1", conversion_id="k1", step_id="s3", mark_time=ago(hours=1)
    ),
    "EvaluateGoal": pb.EvaluateGoalRequest(
        event_id="v1", enrollment_id="e1", step_id="s4", evaluate_time=ago(minutes=30)
    ),
    "ExplainGoalEvent": pb.ExplainGoalEventRequest(event_id="g1"),
    "ListConversionAwards": pb.ListConversionAwardsRequest(
        journey_id="welcome", contact_id="c1", page_size=10
    ),
    "StreamConversionEvents": pb.StreamConversionEventsRequest(after_position=0),
    # The fuzzer sets fields of every kind of the oneof, so every kind of batch is sent.
    "StreamIngest": pb.StreamIngestRequest(
        sequence=7,
        touchpoints=pb.BatchRecordTouchpointsRequest(
            touchpoints=[touchpoint("t5", "c2", "welcome", "sms-1", ago(hours=2), "SMS", "CLICKED")]
        ),
    ),
    "GetJourneyReport": pb.GetJourneyReportRequest(
        journey_id="welcome",
        start_time=ago(days=3),
        end_time=ago(hours=-1),
        time_zone="Europe/Paris",
        view=pb.REPORT_VIEW_FULL,
    ),
}

# --- adversarial values -----------------------------------------------------------------------


def token(*key: object) -> str:
    """A page token as the service writes them, around any key."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


HUGE = "x" * 100_000
ADVERSARIAL_STRINGS = [
    "",
    " ",
    " padded ",
    "\t",
    "line\nbreak",
    "\r\n",
    "\x00",
    "a\x00b",
    "\x01\x02\x1b\x1f",
    "\x7f",
    "\x85\x9f",  # C1 controls
    "\u2028\u2029",
    "\u200b",  # zero-width space
    "\ufeff",
    "\u202eevil",  # right-to-left override
    "e\u0301",  # combining accent
    "\U0001f600",
    "\U0010ffff",
    "\ufffe\uffff",
    "ﷺ",
    "'; drop table touchpoints; --",
    "' or '1'='1",
    "%s%n%x",
    "$1",
    "\\",
    '"',
    "null",
    "{}",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "*",
    "https://e.x/*",
    "https://e.x/*/b",
    "Europe/Paris",
    "Europe",
    "EUR\n",
    "x" * MAX_ID_LENGTH,
    "x" * (MAX_ID_LENGTH + 1),
    "é" * MAX_ID_LENGTH,
    "\U0001f600" * MAX_ID_LENGTH,
    "\U0001f600" * (MAX_ID_LENGTH + 1),
    "x" * MAX_TEXT_LENGTH,
    "x" * (MAX_TEXT_LENGTH + 1),
    "語" * MAX_TEXT_LENGTH,
    HUGE,
    token("\x00"),
    token("welcome"),
    token("a", "b"),
    token(1),
    token(HUGE),
    "%%%",
    "====",
]
# Text that protobuf can encode (no lone surrogates).
ANY_CHARACTER = st.characters(codec="utf-8")
WIDE_CHARACTER = st.characters(codec="utf-8", min_codepoint=0x80)

VALID_STRINGS: dict[str, list[str]] = {
    "request_id": ["seed", "r-1", "r-2"],
    "journey_id": ["welcome", "welcome-2"],
    "display_name": ["Welcome"],
    "message_id": ["email-1", "sms-1", "wa-1", "email-9"],
    "message_ids": ["email-1", "email-9"],
    "step_id": ["", "s1", "s2"],
    "path": ["", "p1"],
    "contact_id": ["c1", "c2"],
    "enrollment_id": ["e1", "e2"],
    "conversion_id": ["k1", "k2"],
    "event_id": ["g1", "t1", "new-1"],
    "amends_event_id": ["", "g1"],
    "goal_event_id": ["g1"],
    "name": ["Booked meeting", "Signed up"],
    "currency_code": ["EUR", "USD"],
    "time_zone": ["", "UTC", "Europe/Paris", "Pacific/Kiritimati", "Etc/GMT+12"],
    "page_token": ["", token("a")],
    "attribute_name": ["plan"],
    "attribute_value": ["pro"],
    "list_id": ["l1"],
    "list_ids": ["l1"],
    "form_id": ["f1"],
    "form_ids": ["f1"],
    "url": ["https://e.x/a"],
    "url_patterns": ["https://e.x/*"],
    "product_ids": ["p1"],
}


def strings(name: str) -> st.SearchStrategy[str]:
    options: list[st.SearchStrategy[str]] = [
        st.sampled_from(ADVERSARIAL_STRINGS),
        st.text(ANY_CHARACTER, max_size=30),
        st.text(WIDE_CHARACTER, min_size=MAX_ID_LENGTH - 2, max_size=MAX_ID_LENGTH + 2),
    ]
    if name in VALID_STRINGS:
        options.insert(0, st.sampled_from(VALID_STRINGS[name]))
    return st.one_of(options)


INT32_EDGES = [0, 1, 2, -1, 500, 501, 2**31 - 1, -(2**31)]
INT64_EDGES = [0, 1, -1, 2**31, 2**53 + 1, 2**63 - 1, -(2**63)]
INT32S = st.one_of(st.sampled_from(INT32_EDGES), st.integers(-(2**31), 2**31 - 1))
INT64S = st.one_of(st.sampled_from(INT64_EDGES), st.integers(-(2**63), 2**63 - 1))
UINT64S = st.one_of(st.sampled_from([0, 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))
UNKNOWN_ENUM_NUMBERS = [-1, 99, 2**31 - 1, -(2**31)]

# google.protobuf.Timestamp allows 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
MIN_SECONDS, MAX_SECONDS = -62_135_596_800, 253_402_300_799
TIMESTAMP_SECONDS = [
    MIN_SECONDS,
    MAX_SECONDS,
    MIN_SECONDS - 1,
    MAX_SECONDS + 1,
    0,
    -1,
    10**13,
    -(10**13),
    2**63 - 1,
    -(2**63),
]
NANOS = [0, 1, 999_999_999, 10**9, -1, 2**31 - 1, -(2**31)]
NANOS_STRATEGY = st.one_of(st.sampled_from(NANOS), st.integers(0, 10**9 - 1))
TIMESTAMPS = st.one_of(
    st.sampled_from(
        [
            ago(minutes=1),
            ago(hours=1),
            ago(days=1),
            ago(days=29),
            ago(days=31),
            ago(hours=-1),
            ago(days=-365 * 100),
        ]
    ),
    st.builds(
        timestamp_pb2.Timestamp,
        seconds=st.one_of(
            st.sampled_from(TIMESTAMP_SECONDS), st.integers(MIN_SECONDS, MAX_SECONDS)
        ),
        nanos=NANOS_STRATEGY,
    ),
)
# google.protobuf.Duration allows +-315,576,000,000 seconds.
DURATION_SECONDS = [0, 1, 59, 60, 365 * 86400, 365 * 86400 + 1, -60, 315_576_000_000]
DURATIONS = st.builds(
    duration_pb2.Duration,
    seconds=st.one_of(
        st.sampled_from([*DURATION_SECONDS, -315_576_000_000, 2**63 - 1, -(2**63)]),
        st.integers(-315_576_000_000, 315_576_000_000),
    ),
    nanos=NANOS_STRATEGY,
)
DOUBLES = st.one_of(
    st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 1e308, 5e-324]),
    st.floats(allow_nan=True, allow_infinity=True),
)

# --- mutation of a request along its descriptor ------------------------------------------------

Path = tuple[FieldDescriptor, ...]
WELL_KNOWN = {"google.protobuf.Timestamp", "google.protobuf.Duration"}
LIST_SIZES = [0, 1, 2, 3, 50, MAX_LIST_LENGTH + 1]
BATCH_SIZES = [0, 1, 2, MAX_BATCH, MAX_BATCH + 1]


def field_paths(descriptor: Descriptor, prefix: Path = ()) -> list[Path]:
    """Every field of a message, nested ones included (well-known types are leaves)."""
    found: list[Path] = []
    for field in descriptor.fields:
        path = (*prefix, field)
        found.append(path)
        nested = field.message_type
        if nested is not None and nested.full_name not in WELL_KNOWN and len(prefix) < 4:
            found.extend(field_paths(nested, path))
    return found


def is_repeated(field: FieldDescriptor) -> bool:
    return field.is_repeated


def _distinct(item: Message, index: int) -> None:
    """Copy `index` of a repeated element, with its own key: a list of equal elements only
    tests the duplicate checks."""
    if index == 0:
        return
    fields = item.DESCRIPTOR.fields_by_name
    if isinstance(item, journey_pb2.JourneyVersion):
        item.version = index + 1
    for name in ("event_id", "message_id", "enrollment_id"):
        if name in fields and getattr(item, name):
            setattr(item, name, f"{getattr(item, name)}-{index}")


def scalar_values(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return strings(field.name)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        defined = [v.number for v in field.enum_type.values]
        return st.one_of(
            st.sampled_from(defined), st.sampled_from([max(defined) + 1, *UNKNOWN_ENUM_NUMBERS])
        )
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return INT32S
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        return INT64S
    if kind == FieldDescriptor.TYPE_UINT64:
        return UINT64S
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return DOUBLES
    raise AssertionError(f"no strategy for field {field.full_name} of type {kind}")


def mutate(draw: st.DrawFn, holder: Message, path: Path, top_level: bool) -> None:
    """Sets the field at `path` under `holder` to an adversarial value (creating the elements
    and messages on the way)."""
    field, rest = path[0], path[1:]
    if rest:
        child: Message
        if is_repeated(field):
            container = getattr(holder, field.name)
            if not container:
                container.add()
            child = container[draw(st.integers(0, len(container) - 1))]
        else:
            child = getattr(holder, field.name)
        mutate(draw, child, rest, top_level=False)
        return
    nested = field.message_type
    if is_repeated(field):
        container = getattr(holder, field.name)
        if nested is None:
            name = field.name.removesuffix("s") if field.name.endswith("_ids") else field.name
            values = draw(
                st.one_of(
                    st.lists(scalar_values(field), max_size=4),
                    st.sampled_from(VALID_STRINGS.get(field.name, ["x"])).flatmap(
                        lambda v: st.sampled_from([[v] * MAX_LIST_LENGTH, [v] * 1001])
                    ),
                    st.just([f"{name}-{i}" for i in range(MAX_LIST_LENGTH + 1)]),
                )
            )
            del container[:]
            container.extend(values)
            return
        template = container[0] if container else None
        size = draw(st.sampled_from(BATCH_SIZES if top_level else LIST_SIZES))
        copies = []
        for index in range(size):
            item = container.add() if template is None else type(template)()
            if template is not None:
                item.CopyFrom(template)
            _distinct(item, index)
            copies.append(item)
        if template is not None:
            del container[:]
            container.extend(copies)
        else:
            del container[size:]
        return
    if nested is not None:
        if nested.full_name == "google.protobuf.Timestamp":
            value: Message | None = draw(st.one_of(st.none(), TIMESTAMPS))
        elif nested.full_name == "google.protobuf.Duration":
            value = draw(st.one_of(st.none(), DURATIONS))
        else:
            value = draw(st.sampled_from([None, message_factory.GetMessageClass(nested)()]))
        holder.ClearField(field.name)
        if value is not None:
            getattr(holder, field.name).CopyFrom(value)
        return
    setattr(holder, field.name, draw(scalar_values(field)))


PATHS = {name: field_paths(cast(Descriptor, BASES[name].DESCRIPTOR)) for name in BASES}


@st.composite
def requests(draw: st.DrawFn, method: str) -> Message:
    """The method's valid request with up to five fields, at any depth, changed."""
    request = type(BASES[method])()
    request.CopyFrom(BASES[method])
    for _ in range(draw(st.integers(0, 5))):
        path = draw(st.sampled_from(PATHS[method]))
        note(f"mutating {'.'.join(f.name for f in path)}")
        mutate(draw, request, path, top_level=True)
    return request


# --- the module's server and database ---------------------------------------------------------


@dataclass(frozen=True)
class Env:
    stub: Stub
    health: grpc.aio.UnaryUnaryMultiCallable[
        health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse
    ]
    pool: asyncpg.Pool
    tables: tuple[str, ...]


@pytest.fixture(scope="module")
async def env(postgres_url: str, template_database: str) -> AsyncIterator[Env]:
    """A server on a database of this module, a pool on that database to compare a tenant's
    rows, and every table that holds tenant rows."""
    name = f"jc_fuzz_{uuid.uuid4().hex[:12]}"
    await admin_execute(postgres_url, f'create database "{name}" template "{template_database}"')
    url = with_database(postgres_url, name)
    app = await build(config_module.from_values(DEV_SERVER), url, "127.0.0.1:0")
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        tables = tuple(
            r["table_name"]
            for r in await pool.fetch(
                "select table_name from information_schema.columns where table_schema = 'public'"
                " and column_name = 'tenant_id' order by table_name"
            )
        )
        # A client that takes the largest reply the server may send.
        options = [("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}", options=options) as channel:
            yield Env(
                service_pb2_grpc.JourneyConversionsServiceStub(channel),
                channel.unary_unary(
                    "/grpc.health.v1.Health/Check",
                    request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                    response_deserializer=health_pb2.HealthCheckResponse.FromString,
                ),
                pool,
                tables,
            )
    finally:
        await pool.close()
        await app.stop(grace=1)
        await admin_execute(postgres_url, f'drop database if exists "{name}" with (force)')


def new_tenant() -> tuple[str, Metadata]:
    tenant_id = f"fz-{uuid.uuid4().hex[:16]}"
    return tenant_id, (("x-tenant-id", tenant_id),)


async def rows(env: Env, tenant_id: str) -> dict[str, list[str]]:
    """Every row of the tenant, table by table."""
    found: dict[str, list[str]] = {}
    async with env.pool.acquire() as conn:
        for table in env.tables:
            records = await conn.fetch(f'select * from "{table}" where tenant_id = $1', tenant_id)
            found[table] = sorted(repr(tuple(r.values())) for r in records)
    return found


async def stored_keys(env: Env, tenant_id: str, batch: Batch) -> set[str]:
    return {r[0] for r in await env.pool.fetch(batch.stored, tenant_id)}


@dataclass
class Reply:
    code: Code
    error: grpc.aio.AioRpcError | None
    responses: list[Message]


async def invoke(env: Env, method: str, request: Message, metadata: Metadata) -> Reply:
    """Calls one RPC; a stream is read until it ends (at its short deadline, if valid)."""
    rpc: Any = getattr(env.stub, method)
    responses: list[Message] = []
    try:
        if method in BIDIRECTIONAL:
            call = rpc(metadata=metadata, timeout=UNARY_TIMEOUT)
            await call.initial_metadata()  # accepted: writing cannot race a refusal
            if not call.done():
                await call.write(request)
                await call.done_writing()
            async for item in call:
                responses.append(item)
        elif method in STREAMING:
            async for item in rpc(request, metadata=metadata, timeout=STREAM_TIMEOUT):
                responses.append(item)
        else:
            responses.append(await rpc(request, metadata=metadata, timeout=UNARY_TIMEOUT))
    except grpc.aio.AioRpcError as error:
        return Reply(error.code(), error, responses)
    return Reply(Code.OK, None, responses)


async def seed(env: Env, metadata: Metadata) -> None:
    for method, request in SEED:
        reply = await invoke(env, method, request, metadata)
        assert reply.error is None, (method, reply.error)


async def assert_serving(env: Env) -> None:
    answer = await env.health(health_pb2.HealthCheckRequest(service=SERVICE.full_name), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


def assert_defined_status(method: str, reply: Reply) -> None:
    """The reply's status is one the contract documents for the method, and an error says
    what it is (ErrorInfo; BadRequest field violations for INVALID_ARGUMENT)."""
    error = reply.error
    details = error.details() if error is not None else ""
    # A stream ends at its deadline: the test's short one, for a valid request.
    ended = {Code.DEADLINE_EXCEEDED} if method in STREAMING else set()
    assert reply.code in ALLOWED | ended, (reply.code, details)
    assert reply.code in _ALWAYS | DOCUMENTED[method], (reply.code, details)
    if error is None or reply.code == Code.DEADLINE_EXCEEDED:
        return
    reason = error_reason(error)
    if reply.code == Code.RESOURCE_EXHAUSTED and not reason:
        # grpc refuses a message over the size limit before any handler: its own message.
        assert "larger than max" in (details or ""), details
        return
    assert reason, f"{reply.code.name} without ErrorInfo: {details}"
    if reply.code == Code.INVALID_ARGUMENT:
        violations = field_violations(error)
        assert violations, f"INVALID_ARGUMENT without field violations: {details}"
        assert all(violations.values()), violations


def assert_item_results(
    request: Message, batch: Batch, reply: Reply
) -> list[events_pb2.ItemResult]:
    """One result per item, in request order, a defined status each, an error only on the
    rejected ones."""
    field = batch.field
    items = getattr(request, field)
    (response,) = reply.responses
    results = list(cast(Any, response).results)
    assert [r.index for r in results] == list(range(len(items)))
    assert [r.event_id for r in results] == [getattr(i, batch.key) for i in items]
    for result in results:
        if result.status == events_pb2.ITEM_STATUS_REJECTED:
            assert result.error.code in ITEM_CODES, result
            assert result.error.reason and result.error.message, result
            if result.error.code == "INVALID_ARGUMENT":
                assert result.error.field_violations, result
                prefix = f"{field}[{result.index}]."
                assert all(v.field.startswith(prefix) for v in result.error.field_violations)
        else:
            assert result.status in (
                events_pb2.ITEM_STATUS_ACCEPTED,
                events_pb2.ITEM_STATUS_DUPLICATE,
            ), result
            assert not result.HasField("error"), result
    return results


# The Batch RPC that answers each kind of a StreamIngest message's batch.
STREAM_BATCHES = {
    "touchpoints": "BatchRecordTouchpoints",
    "goal_events": "BatchRecordGoalEvents",
    "enrollments": "BatchEnterJourney",
    "exits": "BatchExitJourney",
}


def batch_method(method: str, request: Message) -> str:
    """The method whose answer `request` gets: its own, or for a StreamIngest message the
    Batch RPC of its batch's kind."""
    if method != STREAM_INGEST:
        return method
    field = cast(pb.StreamIngestRequest, request).WhichOneof("batch")
    return STREAM_BATCHES[field] if field else method


def as_batch(request: Message, reply: Reply) -> tuple[Message, Reply]:
    """A StreamIngest message answered on an open stream, as the Batch RPC of its kind: its
    batch, and its one response as that RPC's reply (a refused message as a failed call,
    which must be INVALID_ARGUMENT with field violations; the stream ended OK)."""
    message = cast(pb.StreamIngestRequest, request)
    (response,) = cast(list[pb.StreamIngestResponse], reply.responses)
    assert response.sequence == message.sequence
    field = message.WhichOneof("batch")
    inner: Message = getattr(message, field) if field else message
    if response.HasField("error"):
        error = response.error
        assert not response.results
        assert error.code == "INVALID_ARGUMENT" and error.reason and error.message, error
        assert error.field_violations and all(v.description for v in error.field_violations)
        return inner, Reply(Code.INVALID_ARGUMENT, None, [])
    assert field is not None
    method = SERVICE.methods_by_name[STREAM_BATCHES[field]]
    answer = message_factory.GetMessageClass(method.output_type)(results=response.results)
    return inner, Reply(Code.OK, None, [answer])


def test_every_rpc_has_a_base_request() -> None:
    """A new RPC fails here until it is fuzzed (and its errors documented above)."""
    assert sorted(BASES) == sorted(METHOD_NAMES)
    assert sorted(DOCUMENTED) == sorted(METHOD_NAMES)
    for name, request in BASES.items():
        assert SERVICE.methods_by_name[name].input_type == request.DESCRIPTOR, name


async def test_base_requests_are_valid(env: Env) -> None:
    """Unmutated, each base request gets past validation in a seeded tenant."""
    for method in METHOD_NAMES:
        _, metadata = new_tenant()
        await seed(env, metadata)
        reply = await invoke(env, method, BASES[method], metadata)
        expected = Code.DEADLINE_EXCEEDED if method in STREAMING else Code.OK
        assert reply.code == expected, (method, reply.error)


@pytest.mark.parametrize("method", METHOD_NAMES)
@settings(
    max_examples=examples(12, 500),
    deadline=None,
    suppress_health_check=SERVER_HEALTH_CHECKS,
)
@given(data=st.data())
async def test_fuzzed_request_gets_a_defined_status_and_writes_nothing_when_refused(
    env: Env, method: str, data: st.DataObject
) -> None:
    """One fuzzed request in a seeded tenant: a defined status; a refused call or a read
    leaves every row as it was; a batch stores exactly the items it accepted; the server
    keeps serving."""
    request = data.draw(requests(method), label="request")
    tenant_id, metadata = new_tenant()
    await seed(env, metadata)
    before = await rows(env, tenant_id)
    batch = BATCHES.get(batch_method(method, request))
    keys_before = await stored_keys(env, tenant_id, batch) if batch else set()

    reply = await invoke(env, method, request, metadata)
    event(f"{method}: {reply.code.name}")
    if reply.error is not None:
        note(f"{reply.code.name}: {(reply.error.details() or '')[:500]}")
    assert_defined_status(method, reply)
    if method == STREAM_INGEST and reply.code == Code.OK:
        request, reply = as_batch(request, reply)

    if batch and reply.code == Code.OK:
        results = assert_item_results(request, batch, reply)
        accepted = {r.event_id for r in results if r.status == events_pb2.ITEM_STATUS_ACCEPTED}
        event(f"{method}: {len(accepted)} accepted of {len(results)}")
        assert await stored_keys(env, tenant_id, batch) == keys_before | accepted
        assert not accepted & keys_before
        if not accepted:
            assert await rows(env, tenant_id) == before
    elif reply.code != Code.OK or method in READS:
        assert await rows(env, tenant_id) == before, "a refused call or a read wrote something"
    await assert_serving(env)


WRITES = [m for m in METHOD_NAMES if m not in READS]


@pytest.mark.parametrize("method", list(BATCHES))
@settings(
    max_examples=examples(8, 300),
    deadline=None,
    suppress_health_check=SERVER_HEALTH_CHECKS,
)
@given(data=st.data(), sequence=UINT64S)
async def test_stream_ingest_answers_a_fuzzed_batch_as_its_batch_rpc(
    env: Env, method: str, data: st.DataObject, sequence: int
) -> None:
    """The same fuzzed batch, in two tenants seeded alike, through the Batch RPC and as a
    StreamIngest message: the same item results, or the message refused with the Batch
    RPC's status (the stream going on), or both over the size limit."""
    request = data.draw(requests(method), label="request")
    _, by_batch_md = new_tenant()
    _, by_stream_md = new_tenant()
    await seed(env, by_batch_md)
    await seed(env, by_stream_md)
    field = next(f for f, m in STREAM_BATCHES.items() if m == method)
    message = pb.StreamIngestRequest(sequence=sequence)
    getattr(message, field).CopyFrom(request)

    by_batch = await invoke(env, method, request, by_batch_md)
    by_stream = await invoke(env, STREAM_INGEST, message, by_stream_md)
    event(f"{method}: {by_batch.code.name}")
    if by_batch.code == Code.RESOURCE_EXHAUSTED:  # over grpc's message size limit
        assert by_stream.code == Code.RESOURCE_EXHAUSTED, by_stream.error
        return
    assert by_stream.code == Code.OK, by_stream.error
    (response,) = cast(list[pb.StreamIngestResponse], by_stream.responses)
    assert response.sequence == sequence
    if by_batch.error is None:
        (answer,) = by_batch.responses
        results = cast(Any, answer).results
        assert [_at_any_instant(r) for r in response.results] == [
            _at_any_instant(r) for r in results
        ]
        assert not response.HasField("error")
    else:
        refused = response.error
        assert (refused.code, refused.reason, _at_any_instant(refused.message)) == (
            by_batch.code.name,
            error_reason(by_batch.error),
            _at_any_instant(by_batch.error.details()),
        )
        assert {v.field: _at_any_instant(v.description) for v in refused.field_violations} == {
            f: _at_any_instant(d) for f, d in field_violations(by_batch.error).items()
        }


_INSTANT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def _at_any_instant(value: object) -> str:
    """`value` as text with its instants blanked: the two calls are judged a moment apart, so
    a bound such as the oldest time accepted may differ by a second between them."""
    return _INSTANT.sub("<instant>", str(value))


@settings(
    max_examples=examples(20, 1000),
    deadline=None,
    suppress_health_check=SERVER_HEALTH_CHECKS,
)
@given(data=st.data())
async def test_fuzzed_writes_then_every_read_gets_a_defined_status(
    env: Env, data: st.DataObject
) -> None:
    """What fuzzed writes store (extreme values that passed validation) does not break a
    later read: every read's valid request still gets a defined status."""
    _, metadata = new_tenant()
    await seed(env, metadata)
    for _ in range(data.draw(st.integers(1, 4), label="writes")):
        method = data.draw(st.sampled_from(WRITES), label="method")
        request = data.draw(requests(method), label="request")
        reply = await invoke(env, method, request, metadata)
        event(f"{method}: {reply.code.name}")
        assert_defined_status(method, reply)
    for method in sorted(READS):
        reply = await invoke(env, method, BASES[method], metadata)
        if reply.error is not None:
            note(f"{method} {reply.code.name}: {(reply.error.details() or '')[:500]}")
        assert_defined_status(method, reply)
    await assert_serving(env)


# --- stored text comes back byte for byte -----------------------------------------------------

_NOT_IN_IDS = "".join(map(chr, [*range(0x20), 0x7F]))
_EDGE_SPACE = re.compile(r"^\s|\s$")
ID_CHARACTER = st.characters(codec="utf-8", exclude_characters=_NOT_IN_IDS)
FOUR_BYTE_CHARACTER = st.characters(codec="utf-8", min_codepoint=0x10000)
TEXT_CHARACTER = st.characters(codec="utf-8", exclude_characters="\x00")

IDS = st.one_of(
    st.text(ID_CHARACTER, min_size=1, max_size=12),
    st.text(ID_CHARACTER, min_size=MAX_ID_LENGTH, max_size=MAX_ID_LENGTH),
    st.text(FOUR_BYTE_CHARACTER, min_size=MAX_ID_LENGTH, max_size=MAX_ID_LENGTH),
    st.sampled_from(["'; drop table touchpoints; --", "\U0010ffff", "e\u0301", "\u202eevil"]),
).filter(lambda s: not _EDGE_SPACE.search(s))
TEXTS = st.one_of(
    st.text(TEXT_CHARACTER, max_size=12),
    st.text(TEXT_CHARACTER, min_size=MAX_TEXT_LENGTH, max_size=MAX_TEXT_LENGTH),
    st.text(FOUR_BYTE_CHARACTER, min_size=MAX_TEXT_LENGTH, max_size=MAX_TEXT_LENGTH),
    st.sampled_from(["\x01\x1f\x7f\r\n\t", " padded ", "'; drop table touchpoints; --"]),
)

# A message's path is text (control characters allowed) of at most MAX_ID_LENGTH characters.
MESSAGE_PATHS = st.one_of(
    st.text(TEXT_CHARACTER, max_size=12),
    st.text(TEXT_CHARACTER, min_size=MAX_ID_LENGTH, max_size=MAX_ID_LENGTH),
    st.text(FOUR_BYTE_CHARACTER, min_size=MAX_ID_LENGTH, max_size=MAX_ID_LENGTH),
)


def distinct_ids(count: int) -> st.SearchStrategy[list[str]]:
    return st.lists(IDS, min_size=count, max_size=count, unique=True)


@dataclass(frozen=True)
class TextWorld:
    """Ids and text of every kind the API stores; the goal event matches the goal."""

    journey_id: str
    display_name: str
    message_ids: list[str]  # an email and a WhatsApp message
    step_ids: list[str]  # their steps, then the Convert step
    paths: list[str]
    goal: journey_pb2.GoalCriterion
    goal_event: events_pb2.GoalEvent
    conversion_id: str
    conversion_name: str
    enrollment_id: str
    contact_id: str
    touchpoint_id: str
    mark_id: str


@st.composite
def text_worlds(draw: st.DrawFn) -> TextWorld:
    journey_id, conversion_id, enrollment_id, contact_id = draw(distinct_ids(4))
    message_ids = draw(distinct_ids(2))
    step_ids = draw(distinct_ids(3))
    paths = [draw(MESSAGE_PATHS) for _ in message_ids]
    touchpoint_id, goal_id, mark_id = draw(IDS), draw(IDS), draw(IDS)
    kind = draw(
        st.sampled_from(
            [
                "CONTACT_UPDATED",
                "CONTACT_ADDED_TO_LIST",
                "WEBSITE_PAGE_VISITED",
                "FORM_SUBMITTED",
                "ORDER_PLACED",
                "EMAIL_CLICKED",
            ]
        )
    )
    criterion = goal(kind)
    event = goal_event(goal_id, contact_id, kind, ago(hours=2))
    if kind == "CONTACT_UPDATED":
        criterion.attribute_name = event.attribute_name = draw(IDS)
        criterion.attribute_value = event.attribute_value = draw(TEXTS)
    elif kind == "CONTACT_ADDED_TO_LIST":
        lists = draw(st.lists(IDS, min_size=1, max_size=3))
        criterion.list_ids.extend(lists)
        event.list_id = lists[0]
    elif kind == "WEBSITE_PAGE_VISITED":
        url = draw(TEXTS.filter(lambda s: s and "*" not in s))
        criterion.url_patterns.append(url)
        event.url = url
    elif kind == "FORM_SUBMITTED":
        forms = draw(st.lists(IDS, min_size=1, max_size=3))
        criterion.form_ids.extend(forms)
        event.form_id = forms[-1]
    elif kind == "ORDER_PLACED":
        products = draw(st.lists(IDS, min_size=1, max_size=4))
        criterion.product_ids.extend(products)
        event.product_ids.extend(products)
        event.value.CopyFrom(journey_pb2.Money(currency_code="EUR", amount_micros=12_500_000))
    else:
        criterion.message_ids.append(message_ids[0])
        event.message_id = message_ids[0]
    name = draw(
        st.text(TEXT_CHARACTER, min_size=1, max_size=MAX_ID_LENGTH).filter(
            lambda s: "".join(s.casefold().split())
        )
    )
    return TextWorld(
        journey_id=journey_id,
        display_name=draw(TEXTS),
        message_ids=message_ids,
        step_ids=step_ids,
        paths=paths,
        goal=criterion,
        goal_event=event,
        conversion_id=conversion_id,
        conversion_name=name,
        enrollment_id=enrollment_id,
        contact_id=contact_id,
        touchpoint_id=touchpoint_id,
        mark_id=mark_id,
    )


def wide(seed: int, length: int = MAX_ID_LENGTH) -> str:
    """`length` four-byte characters in no repeating order (so Postgres cannot compress them):
    the most bytes a value of that many characters can take."""
    return "".join(chr(0x10000 + (i * 7919 + seed * 104_729) % 0xFFFFF) for i in range(length))


def widest_world(kind: str) -> TextWorld:
    """Every id, path and text at its longest, in four-byte characters."""
    ids = iter(range(100))
    event = goal_event(wide(next(ids)), wide(next(ids)), kind, ago(hours=2))
    criterion = goal(kind)
    if kind == "CONTACT_UPDATED":
        criterion.attribute_name = event.attribute_name = wide(next(ids))
        criterion.attribute_value = event.attribute_value = wide(next(ids), MAX_TEXT_LENGTH)
    else:
        products = [wide(next(ids)) for _ in range(4)]
        criterion.product_ids.extend(products)
        event.product_ids.extend(products)
    return TextWorld(
        journey_id=wide(next(ids)),
        display_name=wide(next(ids), MAX_TEXT_LENGTH),
        message_ids=[wide(next(ids)), wide(next(ids))],
        step_ids=[wide(next(ids)) for _ in range(3)],
        paths=[wide(next(ids)), wide(next(ids))],
        goal=criterion,
        goal_event=event,
        conversion_id=wide(next(ids)),
        conversion_name=wide(next(ids)),
        enrollment_id=wide(next(ids)),
        contact_id=event.contact_id,
        touchpoint_id=wide(next(ids)),
        mark_id=wide(next(ids)),
    )


def messages(version: journey_pb2.JourneyVersion) -> set[bytes]:
    """A version's messages, in any order (the service orders them by id, in its collation)."""
    return {m.SerializeToString(deterministic=True) for m in version.messages}


_ID_SETS = ("list_ids", "message_ids", "form_ids", "product_ids")


def normalized(value: _M) -> _M:
    """A goal event or criterion as the service returns it: its lists of ids are sets, sorted
    (url patterns keep their order)."""
    result = type(value)()
    result.CopyFrom(value)
    for name in _ID_SETS:
        if name in value.DESCRIPTOR.fields_by_name:
            ids = sorted(set(getattr(value, name)))
            result.ClearField(name)
            getattr(result, name).extend(ids)
    return result


@settings(
    max_examples=examples(12, 300),
    deadline=None,
    suppress_health_check=SERVER_HEALTH_CHECKS,
)
@example(world=widest_world("CONTACT_UPDATED"))
@example(world=widest_world("ORDER_PLACED"))
@given(world=text_worlds())
async def test_stored_text_comes_back_byte_for_byte(env: Env, world: TextWorld) -> None:
    """Every id and text the API stores is returned exactly as sent, by every read that
    returns it (a conversion name without its surrounding whitespace, which it ignores)."""
    stub = env.stub
    _, md = new_tenant()
    w = world
    journey = journey_pb2.Journey(
        journey_id=w.journey_id,
        display_name=w.display_name,
        versions=[
            journey_pb2.JourneyVersion(
                version=1,
                messages=[
                    journey_pb2.JourneyMessage(
                        message_id=w.message_ids[0],
                        channel=journey_pb2.CHANNEL_EMAIL,
                        step_id=w.step_ids[0],
                        path=w.paths[0],
                    ),
                    journey_pb2.JourneyMessage(
                        message_id=w.message_ids[1],
                        channel=journey_pb2.CHANNEL_WHATSAPP,
                        step_id=w.step_ids[1],
                        path=w.paths[1],
                    ),
                ],
            )
        ],
        goal=w.goal,
    )
    defined = await stub.DefineJourney(
        pb.DefineJourneyRequest(request_id=w.journey_id, journey=journey), metadata=md
    )
    for returned in (
        defined.journey,
        (await stub.GetJourney(pb.GetJourneyRequest(journey_id=w.journey_id), metadata=md)).journey,
    ):
        assert returned.journey_id == w.journey_id
        assert returned.display_name == w.display_name
        assert [v.version for v in returned.versions] == [1]
        assert messages(returned.versions[0]) == messages(journey.versions[0])
        assert returned.goal == normalized(w.goal)
        assert [c.goal for c in returned.goal_history] == [normalized(w.goal)]
    listed = await stub.ListJourneys(pb.ListJourneysRequest(), metadata=md)
    assert [j.journey_id for j in listed.journeys] == [w.journey_id]

    conversion = conversions_pb2.ConversionDefinition(
        conversion_id=w.conversion_id, journey_id=w.journey_id, name=w.conversion_name
    )
    await stub.DefineConversion(
        pb.DefineConversionRequest(request_id=w.conversion_id, conversion=conversion), metadata=md
    )
    conversions = await stub.ListConversions(
        pb.ListConversionsRequest(journey_id=w.journey_id), metadata=md
    )
    assert [(c.conversion_id, c.journey_id, c.name) for c in conversions.conversions] == [
        (w.conversion_id, w.journey_id, w.conversion_name.strip())
    ]

    await stub.EnterJourney(
        enter(w.enrollment_id, w.contact_id, w.journey_id, ago(days=2)), metadata=md
    )
    enrollment = (
        await stub.GetEnrollment(
            pb.GetEnrollmentRequest(enrollment_id=w.enrollment_id), metadata=md
        )
    ).enrollment
    assert (enrollment.enrollment_id, enrollment.contact_id, enrollment.journey_id) == (
        w.enrollment_id,
        w.contact_id,
        w.journey_id,
    )
    enrollments = await stub.ListEnrollments(
        pb.ListEnrollmentsRequest(contact_id=w.contact_id, journey_id=w.journey_id), metadata=md
    )
    assert list(enrollments.enrollments) == [enrollment]

    await stub.RecordTouchpoint(
        pb.RecordTouchpointRequest(
            touchpoint=touchpoint(
                w.touchpoint_id,
                w.contact_id,
                w.journey_id,
                w.message_ids[0],
                ago(days=1),
                action="CLICKED",
            )
        ),
        metadata=md,
    )
    recorded = await stub.RecordGoalEvent(
        pb.RecordGoalEventRequest(goal_event=w.goal_event), metadata=md
    )
    expected_outcome = (w.goal_event.event_id, w.journey_id, w.enrollment_id)
    expected_credit = (w.touchpoint_id, w.message_ids[0])
    explained = (
        await stub.ExplainGoalEvent(
            pb.ExplainGoalEventRequest(event_id=w.goal_event.event_id), metadata=md
        )
    ).explanation
    for outcome in (recorded.outcome, explained.outcome):
        assert outcome.status == conversions_pb2.OUTCOME_STATUS_CONVERTED
        assert (outcome.goal_event_id, outcome.journey_id, outcome.enrollment_id) == (
            expected_outcome
        )
        assert (outcome.touchpoint_event_id, outcome.message_id) == expected_credit
    assert explained.goal_event == normalized(w.goal_event)
    assert [
        (c.journey_id, c.touchpoint_event_id, c.enrollment_id) for c in explained.candidates
    ] == [(w.journey_id, w.touchpoint_id, w.enrollment_id)]

    await stub.MarkConversion(
        pb.MarkConversionRequest(
            event_id=w.mark_id,
            enrollment_id=w.enrollment_id,
            conversion_id=w.conversion_id,
            step_id=w.step_ids[2],
            mark_time=ago(hours=1),
        ),
        metadata=md,
    )
    awards = (
        await stub.ListConversionAwards(
            pb.ListConversionAwardsRequest(journey_id=w.journey_id, contact_id=w.contact_id),
            metadata=md,
        )
    ).awards
    expected_awards = {
        ("", w.goal_event.event_id, w.touchpoint_id, w.message_ids[0], ""),
        (w.conversion_id, "", "", "", w.step_ids[2]),
    }
    found_awards = {
        (a.conversion_id, a.goal_event_id, a.touchpoint_event_id, a.message_id, a.step_id)
        for a in awards
    }
    assert found_awards == expected_awards
    assert {(a.contact_id, a.journey_id, a.enrollment_id) for a in awards} == {
        (w.contact_id, w.journey_id, w.enrollment_id)
    }
    streamed = []
    async for item in stub.StreamConversionEvents(
        pb.StreamConversionEventsRequest(), metadata=md, timeout=10
    ):
        streamed.append(item.event.award)
        if len(streamed) == len(awards):
            break
    assert sorted(a.SerializeToString(deterministic=True) for a in streamed) == sorted(
        a.SerializeToString(deterministic=True) for a in awards
    )

    report = (
        await stub.GetJourneyReport(
            pb.GetJourneyReportRequest(journey_id=w.journey_id), metadata=md
        )
    ).report
    assert report.journey_id == w.journey_id
    assert {m.message_id for m in report.messages} == set(w.message_ids)
    assert {w.step_ids[0], w.step_ids[2]} <= {s.key for s in report.steps}
    if w.paths[0]:
        assert w.paths[0] in {p.key for p in report.paths}


# --- a batch keeps its valid items only -------------------------------------------------------

# What an item of a touchpoint batch can be, and the status it gets: valid ones are accepted,
# every other one is rejected with the code given and leaves nothing behind.
TOUCHPOINT_ITEMS: dict[str, tuple[str, Callable[[events_pb2.Touchpoint], object]]] = {
    "valid": ("", lambda t: None),
    "unknown-channel": ("INVALID_ARGUMENT", lambda t: setattr(t, "channel", 99)),
    "nul-in-contact": ("INVALID_ARGUMENT", lambda t: setattr(t, "contact_id", "c\x00")),
    "control-in-message": ("INVALID_ARGUMENT", lambda t: setattr(t, "message_id", "email\n")),
    "huge-contact": ("INVALID_ARGUMENT", lambda t: setattr(t, "contact_id", HUGE)),
    "too-old": ("INVALID_ARGUMENT", lambda t: t.occur_time.CopyFrom(ago(days=31))),
    "year-10000": (
        "INVALID_ARGUMENT",
        lambda t: setattr(t.occur_time, "seconds", MAX_SECONDS + 1),
    ),
    "unknown-journey": ("NOT_FOUND", lambda t: setattr(t, "journey_id", "'; drop table x; --")),
    "unknown-message": ("NOT_FOUND", lambda t: setattr(t, "message_id", "email-404")),
    "other-channel": ("INVALID_ARGUMENT", lambda t: setattr(t, "channel", journey_pb2.CHANNEL_SMS)),
}


def _amends_itself(event: events_pb2.GoalEvent) -> None:
    event.CopyFrom(goal_event(event.event_id, event.contact_id, "ORDER_UPDATED", event.occur_time))
    event.amends_event_id = event.event_id


GOAL_EVENT_ITEMS: dict[str, tuple[str, Callable[[events_pb2.GoalEvent], object]]] = {
    "valid": ("", lambda g: None),
    "unknown-type": ("INVALID_ARGUMENT", lambda g: setattr(g, "event_type", 2**31 - 1)),
    "nul-in-value": ("INVALID_ARGUMENT", lambda g: setattr(g, "attribute_value", "a\x00")),
    "huge-attribute": ("INVALID_ARGUMENT", lambda g: setattr(g, "attribute_name", HUGE)),
    "sql-currency": (
        "INVALID_ARGUMENT",
        lambda g: g.value.CopyFrom(journey_pb2.Money(currency_code="'; --")),
    ),
    "far-future": ("INVALID_ARGUMENT", lambda g: setattr(g.occur_time, "seconds", MAX_SECONDS)),
    "field-of-another-type": ("INVALID_ARGUMENT", lambda g: setattr(g, "url", "https://e.x")),
    "amends-itself": ("INVALID_ARGUMENT", _amends_itself),
}


def valid_touchpoint(event_id: str) -> events_pb2.Touchpoint:
    return touchpoint(event_id, "c1", "welcome", "email-1", ago(hours=5), action="CLICKED")


def valid_goal_event(event_id: str) -> events_pb2.GoalEvent:
    return goal_event(
        event_id, "c1", "CONTACT_UPDATED", ago(hours=1), attribute_name="plan", attribute_value="x"
    )


def _far_past(enrollment: events_pb2.Enrollment) -> None:
    enrollment.enter_time.seconds = MIN_SECONDS


ENROLLMENT_ITEMS: dict[str, tuple[str, Callable[[events_pb2.Enrollment], object]]] = {
    "valid": ("", lambda e: None),
    "unknown-journey": ("NOT_FOUND", lambda e: setattr(e, "journey_id", "welcome\u200b")),
    "unknown-version": ("NOT_FOUND", lambda e: setattr(e, "version", 2**31 - 1)),
    "nul-in-contact": ("INVALID_ARGUMENT", lambda e: setattr(e, "contact_id", "\x00")),
    "huge-contact": ("INVALID_ARGUMENT", lambda e: setattr(e, "contact_id", HUGE)),
    "year-1": ("INVALID_ARGUMENT", _far_past),
}


def valid_enrollment(enrollment_id: str) -> events_pb2.Enrollment:
    return enter(enrollment_id, "c1", "welcome", ago(hours=6)).enrollment


@dataclass(frozen=True)
class BatchKind:
    method: str
    items: dict[str, tuple[str, Callable[[Any], object]]]
    valid: Callable[[str], Message]

    @property
    def batch(self) -> Batch:
        return BATCHES[self.method]

    @property
    def field(self) -> str:
        return self.batch.field


BATCH_KINDS = [
    BatchKind("BatchRecordTouchpoints", TOUCHPOINT_ITEMS, valid_touchpoint),
    BatchKind("BatchRecordGoalEvents", GOAL_EVENT_ITEMS, valid_goal_event),
    BatchKind("BatchEnterJourney", ENROLLMENT_ITEMS, valid_enrollment),
]


@pytest.mark.parametrize("kind", BATCH_KINDS, ids=[k.method for k in BATCH_KINDS])
@settings(
    max_examples=examples(10, 300),
    deadline=None,
    suppress_health_check=SERVER_HEALTH_CHECKS,
)
@given(data=st.data())
async def test_batch_keeps_its_valid_items_and_nothing_of_the_invalid_ones(
    env: Env, kind: BatchKind, data: st.DataObject
) -> None:
    plan = data.draw(st.lists(st.sampled_from(sorted(kind.items)), min_size=1, max_size=12))
    tenant_id, md = new_tenant()
    await seed(env, md)
    before = await rows(env, tenant_id)
    keys_before = await stored_keys(env, tenant_id, kind.batch)
    items = []
    for index, name in enumerate(plan):
        item = kind.valid(f"b-{index}")
        kind.items[name][1](item)
        items.append(item)
    request = type(BASES[kind.method])()
    getattr(request, kind.field).extend(items)
    reply = await invoke(env, kind.method, request, md)
    assert reply.code == Code.OK, reply.error
    results = assert_item_results(request, kind.batch, reply)
    for name, result in zip(plan, results, strict=True):
        code = kind.items[name][0]
        if code:
            assert result.status == events_pb2.ITEM_STATUS_REJECTED, (name, result)
            assert result.error.code == code, (name, result)
        else:
            assert result.status == events_pb2.ITEM_STATUS_ACCEPTED, (name, result)
    valid = {f"b-{i}" for i, name in enumerate(plan) if not kind.items[name][0]}
    assert await stored_keys(env, tenant_id, kind.batch) == keys_before | valid
    if not valid:
        assert await rows(env, tenant_id) == before
    # The refused ids were never taken: sent valid now, they are new.
    refused = [f"b-{i}" for i, name in enumerate(plan) if kind.items[name][0]]
    if refused:
        again = type(BASES[kind.method])()
        getattr(again, kind.field).extend(kind.valid(i) for i in refused)
        reply = await invoke(env, kind.method, again, md)
        assert reply.code == Code.OK, reply.error
        statuses = {r.status for r in assert_item_results(again, kind.batch, reply)}
        assert statuses == {events_pb2.ITEM_STATUS_ACCEPTED}


# --- batch and message size limits ------------------------------------------------------------


@pytest.mark.parametrize("kind", BATCH_KINDS, ids=[k.method for k in BATCH_KINDS])
async def test_batch_of_the_maximum_size_is_accepted_and_one_more_is_refused(
    env: Env, kind: BatchKind
) -> None:
    tenant_id, md = new_tenant()
    await seed(env, md)
    full = type(BASES[kind.method])()
    getattr(full, kind.field).extend(kind.valid(f"full-{i}") for i in range(MAX_BATCH))
    reply = await invoke(env, kind.method, full, md)
    assert reply.code == Code.OK, reply.error
    statuses = {r.status for r in assert_item_results(full, kind.batch, reply)}
    assert statuses == {events_pb2.ITEM_STATUS_ACCEPTED}

    before = await rows(env, tenant_id)
    over = type(BASES[kind.method])()
    getattr(over, kind.field).extend(kind.valid(f"over-{i}") for i in range(MAX_BATCH + 1))
    reply = await invoke(env, kind.method, over, md)
    assert reply.code == Code.INVALID_ARGUMENT
    assert reply.error is not None
    assert field_violations(reply.error) == {kind.field: f"must have at most {MAX_BATCH} items"}
    assert await rows(env, tenant_id) == before

    empty = type(BASES[kind.method])()
    reply = await invoke(env, kind.method, empty, md)
    assert reply.code == Code.INVALID_ARGUMENT
    assert reply.error is not None
    assert field_violations(reply.error) == {kind.field: "must have at least one item"}
    assert await rows(env, tenant_id) == before


async def test_request_over_the_message_size_limit_is_resource_exhausted(env: Env) -> None:
    """A batch of items large enough to pass the item count but not the 16 MiB limit: grpc
    refuses it before the service reads it, saying so, and nothing is stored."""
    tenant_id, md = new_tenant()
    await seed(env, md)
    before = await rows(env, tenant_id)
    size = MAX_MESSAGE_BYTES // MAX_BATCH + 1024
    request = pb.BatchRecordTouchpointsRequest(
        touchpoints=[
            touchpoint(f"big-{i}", "c" * size, "welcome", "email-1", ago(hours=1))
            for i in range(MAX_BATCH)
        ]
    )
    assert request.ByteSize() > MAX_MESSAGE_BYTES
    reply = await invoke(env, "BatchRecordTouchpoints", request, md)
    assert reply.code == Code.RESOURCE_EXHAUSTED, reply.error
    assert reply.error is not None
    assert "larger than max" in (reply.error.details() or "")
    assert await rows(env, tenant_id) == before
    await assert_serving(env)


# --- what the fuzzing found, case by case ------------------------------------------------------


class TestFoundByFuzzing:
    """Each case failed before its fix (the status it got is in the test's docstring)."""

    async def test_thousands_of_violations_are_listed_within_what_clients_accept(
        self, env: Env
    ) -> None:
        """Was a transport error ("received metadata size exceeds hard limit"): every violation
        went into the trailing metadata. Now the first ones are listed, then a count."""
        _, md = new_tenant()
        await seed(env, md)
        journey = define_journey(
            "many",
            [message("email-1")],
            goal("EMAIL_CLICKED", message_ids=[wide(i) for i in range(MAX_LIST_LENGTH)]),
        )
        reply = await invoke(env, "DefineJourney", journey, md)
        assert reply.code == Code.INVALID_ARGUMENT
        assert reply.error is not None
        assert error_reason(reply.error) == "INVALID_ARGUMENT"
        violations = field_violations(reply.error)
        assert len(violations) <= MAX_LISTED_VIOLATIONS + 1
        assert violations["journey.goal.message_ids[0]"].startswith("message ")
        assert any(d.endswith("more violations, not listed") for d in violations.values())
        assert len((reply.error.details() or "").encode()) < 4096

    async def test_a_batch_item_lists_its_violations_the_same_way(self, env: Env) -> None:
        _, md = new_tenant()
        event = goal_event("g9", "c1", "ORDER_PLACED", ago(hours=1), product_ids=[" "] * 1000)
        reply = await invoke(
            env, "BatchRecordGoalEvents", pb.BatchRecordGoalEventsRequest(goal_events=[event]), md
        )
        assert reply.code == Code.OK, reply.error
        (result,) = assert_item_results(
            pb.BatchRecordGoalEventsRequest(goal_events=[event]),
            BATCHES["BatchRecordGoalEvents"],
            reply,
        )
        assert result.status == events_pb2.ITEM_STATUS_REJECTED
        listed = [v.field for v in result.error.field_violations]
        assert listed[:MAX_LISTED_VIOLATIONS] == [
            f"goal_events[0].product_ids[{i}]" for i in range(MAX_LISTED_VIOLATIONS)
        ]
        assert result.error.field_violations[-1].description == (
            f"and {1000 - MAX_LISTED_VIOLATIONS} more violations, not listed"
        )

    @pytest.mark.parametrize(
        "name",
        ["Europe", "x" * 300, "é" * 200, "zone.tab", "../../etc/passwd", "Europe/Paris\n", "\x00"],
        ids=[
            "directory",
            "too-long",
            "too-long-non-ascii",
            "data-file",
            "traversal",
            "newline",
            "nul",
        ],
    )
    async def test_time_zone_that_is_not_a_zone_name_is_invalid_argument(
        self, env: Env, name: str
    ) -> None:
        """Was UNAVAILABLE "the database is unavailable: [Errno 36] File name too long: <the
        server's path>" (or Is a directory) for the first three."""
        _, md = new_tenant()
        await seed(env, md)
        request = pb.GetJourneyReportRequest(journey_id="welcome", time_zone=name)
        reply = await invoke(env, "GetJourneyReport", request, md)
        assert reply.code == Code.INVALID_ARGUMENT, reply.error
        assert reply.error is not None
        assert list(field_violations(reply.error)) == ["time_zone"]
        assert "site-packages" not in (reply.error.details() or "")

    @pytest.mark.parametrize("zone", ["", "Pacific/Kiritimati"])
    async def test_report_ending_far_in_the_future_is_invalid_argument(
        self, env: Env, zone: str
    ) -> None:
        """Was INTERNAL (date overflow) east of UTC, and 18 seconds of the event loop then
        RESOURCE_EXHAUSTED (a 43 MB reply of 2.9 million days) in UTC."""
        _, md = new_tenant()
        await seed(env, md)
        request = pb.GetJourneyReportRequest(journey_id="welcome", time_zone=zone)
        request.end_time.seconds = MAX_SECONDS
        reply = await invoke(env, "GetJourneyReport", request, md)
        assert reply.code == Code.INVALID_ARGUMENT, reply.error
        assert reply.error is not None
        assert list(field_violations(reply.error)) == ["end_time"]
        request.end_time.CopyFrom(ago(days=-(MAX_REPORT_AHEAD.days - 1)))
        reply = await invoke(env, "GetJourneyReport", request, md)
        assert reply.code == Code.OK, reply.error

    async def test_value_totals_beyond_int64_fail_the_report_clearly(self, env: Env) -> None:
        """Was INTERNAL (bigint out of range): two goal events valued near the int64 limit."""
        _, md = new_tenant()
        await seed(env, md)
        biggest = journey_pb2.Money(currency_code="EUR", amount_micros=2**63 - 1)
        await invoke(env, "EnterJourney", enter("e2", "c2", "welcome", ago(days=1)), md)
        steps: list[tuple[str, Message]] = [
            (
                "RecordTouchpoint",
                pb.RecordTouchpointRequest(
                    touchpoint=touchpoint("t2", "c2", "welcome", "email-1", ago(hours=5))
                ),
            ),
            *(
                (
                    "RecordGoalEvent",
                    pb.RecordGoalEventRequest(
                        goal_event=goal_event(
                            f"big-{c}", c, "ORDER_PLACED", ago(hours=1), value=biggest
                        )
                    ),
                )
                for c in ("c1", "c2")
            ),
        ]
        for method, request in steps:
            reply = await invoke(env, method, request, md)
            assert reply.code == Code.OK, reply.error
        for view in (pb.REPORT_VIEW_FULL, pb.REPORT_VIEW_BASIC):
            request = pb.GetJourneyReportRequest(journey_id="welcome", view=view)
            reply = await invoke(env, "GetJourneyReport", request, md)
            assert reply.code == Code.FAILED_PRECONDITION, reply.error
            assert reply.error is not None
            assert error_reason(reply.error) == "REPORT_VALUE_OUT_OF_RANGE"
        await assert_serving(env)

    @pytest.mark.parametrize(
        ("edit", "field"),
        [
            (
                lambda r: setattr(r.journey.versions[0].messages[0], "path", "é" * 201),
                "journey.versions[0].messages[0].path",
            ),
            (
                lambda r: r.journey.versions.extend(
                    journey_pb2.JourneyVersion(version=v) for v in range(2, MAX_LIST_LENGTH + 2)
                ),
                "journey.versions",
            ),
            (
                lambda r: r.journey.versions[0].messages.extend(
                    message(f"m{i}") for i in range(MAX_LIST_LENGTH)
                ),
                "journey.versions[0].messages",
            ),
            (
                lambda r: r.journey.goal.CopyFrom(
                    goal(
                        "WEBSITE_PAGE_VISITED",
                        url_patterns=[f"https://e.x/{i}" for i in range(MAX_LIST_LENGTH + 1)],
                    )
                ),
                "journey.goal.url_patterns",
            ),
        ],
        ids=["path-of-201", "1001-versions", "1001-messages", "1001-url-patterns"],
    )
    async def test_journey_lists_and_paths_are_bounded(
        self, env: Env, edit: Callable[[Any], object], field: str
    ) -> None:
        """A longer path (in multi-byte characters) was stored, then every touchpoint of its
        message failed with INTERNAL (index row size exceeds btree maximum 2704); the lists had
        no bound (100,000 messages took seconds to define and slowed every later call)."""
        _, md = new_tenant()
        request = define_journey("bounded", [message("email-1")], goal("ORDER_PLACED"))
        edit(request)
        reply = await invoke(env, "DefineJourney", request, md)
        assert reply.code == Code.INVALID_ARGUMENT, reply.error
        assert reply.error is not None
        assert list(field_violations(reply.error)) == [field]

    @pytest.mark.parametrize("currency", ["EUR\n", "eur", "EU", "EURO", "€UR"])
    async def test_currency_must_be_exactly_three_upper_case_letters(
        self, env: Env, currency: str
    ) -> None:
        """ "EUR\\n" was accepted and stored (a regex "$" matches before a final newline)."""
        _, md = new_tenant()
        event = goal_event(
            "g9",
            "c1",
            "ORDER_PLACED",
            ago(hours=1),
            value=journey_pb2.Money(currency_code=currency, amount_micros=1),
        )
        reply = await invoke(
            env, "RecordGoalEvent", pb.RecordGoalEventRequest(goal_event=event), md
        )
        assert reply.code == Code.INVALID_ARGUMENT, reply.error
        assert reply.error is not None
        assert list(field_violations(reply.error)) == ["goal_event.value.currency_code"]


def string_paths(descriptor: Descriptor) -> list[Path]:
    return [p for p in field_paths(descriptor) if p[-1].type == FieldDescriptor.TYPE_STRING]


def with_value(request: Message, path: Path, value: object) -> tuple[Message, str]:
    """A copy of `request` with the field at `path` (the first element of each list on the
    way, created when missing) set to `value`, and the path as violations name it."""
    copy = type(request)()
    copy.CopyFrom(request)
    holder: Any = copy
    names = []
    for field in path[:-1]:
        if is_repeated(field):
            container = getattr(holder, field.name)
            if not container:
                container.add()
            holder = container[0]
            names.append(f"{field.name}[0]")
        else:
            holder = getattr(holder, field.name)
            names.append(field.name)
    last = path[-1]
    if isinstance(value, Message):
        getattr(holder, last.name).CopyFrom(value)
        names.append(last.name)
    elif is_repeated(last):
        container = getattr(holder, last.name)
        if container:
            container[0] = value
        else:
            container.append(value)
        names.append(f"{last.name}[0]")
    else:
        setattr(holder, last.name, value)
        names.append(last.name)
    return copy, ".".join(names)


SWEPT_VALUES = {
    "nul": "a\x00b",
    "huge": HUGE,
    "201-four-byte-characters": "\U0001f600" * (MAX_ID_LENGTH + 1),
    "control-characters": "\x01\x1b[31m\x7f",
    "sql": "'; drop table touchpoints; --",
}


@pytest.mark.parametrize("value", SWEPT_VALUES.values(), ids=SWEPT_VALUES.keys())
async def test_every_string_field_of_every_request_takes_an_adversarial_value(
    env: Env, value: str
) -> None:
    """Each string field of each request, at any depth, set to the value: a defined status,
    and nothing written when refused. NUL, which Postgres text cannot hold, is refused with
    INVALID_ARGUMENT naming the field (a batch item is rejected naming it) before the database
    sees it: DefineConversion's journey_id reached it, and answered INTERNAL. Output-only
    fields are ignored."""
    tenant_id, md = new_tenant()
    await seed(env, md)
    before = await rows(env, tenant_id)
    for method in METHOD_NAMES:
        base = type(BASES[method])()
        base.CopyFrom(BASES[method])
        if method in BATCHES:
            del getattr(base, BATCHES[method].field)[1:]  # the item under test alone
        for path in string_paths(cast(Descriptor, base.DESCRIPTOR)):
            request, name = with_value(base, path, value)
            reply = await invoke(env, method, request, md)
            assert_defined_status(method, reply)
            if reply.code != Code.OK:
                assert await rows(env, tenant_id) == before, (method, name)
            elif method not in READS:
                before = await rows(env, tenant_id)
            if value != SWEPT_VALUES["nul"] or any(f.name == "goal_history" for f in path):
                continue
            answered_as = batch_method(method, request)
            if answered_as != method:  # a StreamIngest message: judged as its batch
                assert reply.code == Code.OK, (name, reply.error)
                request, reply = as_batch(request, reply)
                name = name.partition(".")[2]
            if answered_as in BATCHES:
                assert reply.code == Code.OK, (name, reply.error)
                (response,) = reply.responses
                (result,) = cast(Any, response).results
                assert result.status == events_pb2.ITEM_STATUS_REJECTED, name
                named = {v.field for v in result.error.field_violations}
            else:
                assert reply.code == Code.INVALID_ARGUMENT, (name, reply.code)
                assert reply.error is not None
                named = set(field_violations(reply.error))
            assert name in named, (name, named)


def extremes(field: FieldDescriptor) -> list[object]:
    """The values at and beyond the range of a field that is not a string."""
    nested = field.message_type
    if nested is not None and nested.full_name == "google.protobuf.Timestamp":
        return [
            timestamp_pb2.Timestamp(seconds=MIN_SECONDS),
            timestamp_pb2.Timestamp(seconds=MAX_SECONDS, nanos=999_999_999),
            timestamp_pb2.Timestamp(seconds=MAX_SECONDS + 1),
            timestamp_pb2.Timestamp(seconds=-(2**63)),
            timestamp_pb2.Timestamp(nanos=-1),
            timestamp_pb2.Timestamp(nanos=10**9),
        ]
    if nested is not None and nested.full_name == "google.protobuf.Duration":
        return [
            duration_pb2.Duration(seconds=2**63 - 1),
            duration_pb2.Duration(seconds=-(2**63)),
            duration_pb2.Duration(seconds=60, nanos=-1),
        ]
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        return [max(v.number for v in field.enum_type.values) + 1, -1, 2**31 - 1]
    if field.type == FieldDescriptor.TYPE_INT32:
        return [2**31 - 1, -(2**31)]
    if field.type == FieldDescriptor.TYPE_INT64:
        return [2**63 - 1, -(2**63)]
    if field.type == FieldDescriptor.TYPE_UINT64:
        return [2**64 - 1]
    if field.type == FieldDescriptor.TYPE_BOOL:
        return [True]
    return []


async def test_every_time_enum_and_number_field_of_every_request_takes_its_extremes(
    env: Env,
) -> None:
    """Each timestamp, duration, enum, integer and bool field of each request, at any depth,
    at and beyond its range: a defined status, and nothing written when refused."""
    tenant_id, md = new_tenant()
    await seed(env, md)
    before = await rows(env, tenant_id)
    for method in METHOD_NAMES:
        for path in field_paths(cast(Descriptor, BASES[method].DESCRIPTOR)):
            if is_repeated(path[-1]):
                continue
            for value in extremes(path[-1]):
                request, name = with_value(BASES[method], path, value)
                reply = await invoke(env, method, request, md)
                assert_defined_status(method, reply)
                if reply.code != Code.OK:
                    assert await rows(env, tenant_id) == before, (method, name, value)
                elif method not in READS:
                    before = await rows(env, tenant_id)
    await assert_serving(env)
