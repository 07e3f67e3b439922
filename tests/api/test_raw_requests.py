"""Requests as raw bytes through the real server: bytes that are not the method's request message
get INVALID_ARGUMENT naming the request type (never grpc's UNKNOWN "Unexpected DecodeError", nor
INTERNAL), on every method of the service; valid bytes still work.

The methods come from the service descriptor, so a new RPC is covered without editing this file.
Calls go through channel.unary_unary / unary_stream / stream_stream with no serializers: bytes in,
bytes out (a bidirectional stream gets one message, then half-close).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import cast

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2
from hypothesis import event, given, settings
from hypothesis import strategies as st
from journeys.conversions.v1 import service_pb2 as pb
from journeys.conversions.v1 import service_pb2_grpc

from journey_conversions.registration import add_service
from journey_conversions.server import MAX_MESSAGE_BYTES
from tests.builders import define_journey, error_reason, goal, message, tenant
from tests.hypothesis_profiles import examples

SERVICE = pb.DESCRIPTOR.services_by_name["JourneyConversionsService"]
METHODS = list(SERVICE.methods)
STREAM_TIMEOUT = 0.25  # a valid stream request keeps streaming; this ends it

# Each fails to parse as any message: a field number of 0, a tag that never ends, a varint
# value cut off after its continuation bit, a length-delimited field shorter than its length.
UNDECODABLE = {
    "field-number-0": b"\x00",
    "unterminated-tag": b"\xff\xff\xff",
    "truncated-varint": b"\x08\x80",
    "truncated-length-delimited": b"\x0a\x05ab",
}


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


@st.composite
def wire_field(draw: st.DrawFn, depth: int = 2) -> bytes:
    """One well-formed field: a varint, or length-delimited text, bytes or fields (a nested
    message), so that some payloads decode into requests with odd content."""
    number = draw(st.integers(1, 10))
    if depth == 0 or draw(st.booleans()):
        return varint(number << 3) + varint(draw(st.integers(0, 2**64 - 1)))
    body = draw(
        st.one_of(
            st.text(max_size=20).map(str.encode),
            st.binary(max_size=20),
            st.lists(wire_field(depth - 1), max_size=3).map(b"".join),
        )
    )
    return varint(number << 3 | 2) + varint(len(body)) + body


PAYLOADS = st.one_of(st.binary(max_size=200), st.lists(wire_field(), max_size=6).map(b"".join))


@pytest.fixture(scope="module")
async def raw_channel(shared_server: str) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the module's one server (each call uses a tenant of its own)."""
    async with grpc.aio.insecure_channel(shared_server) as opened:
        yield opened


def new_tenant() -> tuple[tuple[str, str]]:
    return tenant(f"raw-{uuid.uuid4().hex[:16]}")


async def call_raw(
    channel: grpc.aio.Channel,
    method: MethodDescriptor,
    payload: bytes,
    metadata: tuple[tuple[str, str]] | None = None,
) -> tuple[grpc.aio.AioRpcError | None, list[bytes]]:
    """The error the call ended with (None when OK), and the raw responses it got."""
    path = f"/{SERVICE.full_name}/{method.name}"
    metadata = metadata or new_tenant()
    responses: list[bytes] = []
    try:
        if method.client_streaming:
            # One message, written once the server accepted the stream, then half-closed: the
            # stream ends when every message is answered.
            bidi: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(
                path, request_serializer=None, response_deserializer=None
            )
            call = bidi(metadata=metadata, timeout=10)
            await call.initial_metadata()
            if not call.done():
                await call.write(payload)
                await call.done_writing()
            async for item in call:
                responses.append(item)
        elif method.server_streaming:
            stream: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(
                path, request_serializer=None, response_deserializer=None
            )
            async for item in stream(payload, metadata=metadata, timeout=STREAM_TIMEOUT):
                responses.append(item)
        else:
            unary: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                path, request_serializer=None, response_deserializer=None
            )
            responses.append(await unary(payload, metadata=metadata, timeout=10))
    except grpc.aio.AioRpcError as error:
        return error, responses
    return None, responses


@pytest.mark.parametrize("payload", UNDECODABLE.values(), ids=UNDECODABLE.keys())
@pytest.mark.parametrize("method", METHODS, ids=[m.name for m in METHODS])
async def test_undecodable_request_is_invalid_argument_naming_the_type(
    raw_channel: grpc.aio.Channel, method: MethodDescriptor, payload: bytes
) -> None:
    error, _ = await call_raw(raw_channel, method, payload)
    assert error is not None
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    details = error.details() or ""
    assert details.startswith(f"the request is not a valid {method.input_type.full_name} message")
    assert error_reason(error) == "MALFORMED_REQUEST"


@settings(max_examples=examples(200, 5000), deadline=None)
@given(method=st.sampled_from(METHODS), payload=PAYLOADS)
async def test_random_bytes_never_fail_as_unknown_or_internal(
    raw_channel: grpc.aio.Channel, method: MethodDescriptor, payload: bytes
) -> None:
    """Bytes that happen to decode are an ordinary request (OK, or whatever its content earns);
    the rest are INVALID_ARGUMENT. The server keeps serving after each."""
    error, _ = await call_raw(raw_channel, method, payload)
    code = grpc.StatusCode.OK if error is None else error.code()
    event(code.name)
    assert code not in {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}, error
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        # Only a server stream outlives its deadline; a bidirectional one ends at half-close.
        assert method.server_streaming and not method.client_streaming, error
    elif error is not None:
        assert error_reason(error), f"{code.name} without ErrorInfo: {error.details()}"
    check = raw_channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    answer = await check(health_pb2.HealthCheckRequest(service=SERVICE.full_name), timeout=10)
    assert isinstance(answer, health_pb2.HealthCheckResponse)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


class TestValidBytes:
    """A request serialized by the client goes through the same handlers as before."""

    async def test_list_journeys_answers_ok(self, raw_channel: grpc.aio.Channel) -> None:
        method = SERVICE.methods_by_name["ListJourneys"]
        request = pb.ListJourneysRequest(page_size=10).SerializeToString()
        error, (response,) = await call_raw(raw_channel, method, request)
        assert error is None
        assert list(pb.ListJourneysResponse.FromString(response).journeys) == []

    async def test_defined_journey_is_found(self, raw_channel: grpc.aio.Channel) -> None:
        metadata = new_tenant()
        define = define_journey("welcome", [message("email-1")], goal("ORDER_PLACED"))
        error, _ = await call_raw(
            raw_channel,
            SERVICE.methods_by_name["DefineJourney"],
            define.SerializeToString(),
            metadata,
        )
        assert error is None
        error, (response,) = await call_raw(
            raw_channel,
            SERVICE.methods_by_name["GetJourney"],
            pb.GetJourneyRequest(journey_id="welcome").SerializeToString(),
            metadata,
        )
        assert error is None
        assert pb.GetJourneyResponse.FromString(response).journey.journey_id == "welcome"

    async def test_stream_keeps_streaming(self, raw_channel: grpc.aio.Channel) -> None:
        method = SERVICE.methods_by_name["StreamConversionEvents"]
        request = pb.StreamConversionEventsRequest(after_position=0).SerializeToString()
        error, responses = await call_raw(raw_channel, method, request)
        assert error is not None
        assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert responses == []


async def test_request_over_the_receive_limit_is_resource_exhausted(
    raw_channel: grpc.aio.Channel,
) -> None:
    """grpc refuses it before any handler runs (server.py's grpc.max_receive_message_length)."""
    method = SERVICE.methods_by_name["ListJourneys"]
    error, _ = await call_raw(raw_channel, method, b"\x00" * (MAX_MESSAGE_BYTES + 1))
    assert error is not None
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()


async def test_registration_refuses_a_servicer_that_cannot_answer_a_method() -> None:
    """At startup, not at the first call of the method."""
    servicer = cast(service_pb2_grpc.JourneyConversionsServiceServicer, object())
    with pytest.raises(TypeError, match="DefineJourney must be an async method"):
        add_service(servicer, grpc.aio.server())
