"""Registers JourneyConversionsService on a server, parsing each request itself.

The generated add_..._to_server hands the request bytes to grpc's own deserializer, which
answers bytes that are not the method's request message with UNKNOWN ("Unexpected
DecodeError"). Here the handlers take the raw bytes and parse them, so such a request gets
INVALID_ARGUMENT naming the request type, with ErrorInfo like every other error.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import DecodeError, Message
from journeys.conversions.v1 import service_pb2, service_pb2_grpc

from journey_conversions.errors import ServiceError, to_grpc_status

SERVICE = service_pb2.DESCRIPTOR.services_by_name["JourneyConversionsService"]
MALFORMED_REQUEST = "MALFORMED_REQUEST"  # the ErrorInfo reason

_Unary = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], Awaitable[Message]]
_Streaming = Callable[[Any, "grpc.aio.ServicerContext[Any, Any]"], AsyncIterator[Message]]
_Bidirectional = Callable[
    [AsyncIterator[Any], "grpc.aio.ServicerContext[Any, Any]"], AsyncIterator[Message]
]


def _decode(request_type: type[Message], raw: bytes) -> Message:
    """The request parsed from its bytes; INVALID_ARGUMENT (MALFORMED_REQUEST) otherwise."""
    try:
        return request_type.FromString(raw)
    except DecodeError as error:
        # upb says "Error parsing message with type 'T': <reason>"; keep only the reason.
        reason = str(error).rpartition(": ")[2] or "cannot be parsed"
        name = request_type.DESCRIPTOR.full_name
        raise ServiceError(
            MALFORMED_REQUEST,
            f"the request is not a valid {name} message: {reason}",
            code=grpc.StatusCode.INVALID_ARGUMENT,
        ) from None


async def _parse(
    request_type: type[Message], raw: bytes, context: grpc.aio.ServicerContext[Any, Any]
) -> Message:
    """The request parsed from its bytes; otherwise the call ends with INVALID_ARGUMENT."""
    try:
        return _decode(request_type, raw)
    except ServiceError as error:
        await context.abort_with_status(to_grpc_status(error))
        raise


def _unary(behavior: _Unary, request_type: type[Message]) -> _Unary:
    async def handler(raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> Message:
        return await behavior(await _parse(request_type, raw, context), context)

    return handler


def _streaming(behavior: _Streaming, request_type: type[Message]) -> _Streaming:
    # An async generator itself: grpc.aio tells streaming handlers by isasyncgenfunction.
    async def handler(
        raw: bytes, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Message]:
        async for response in behavior(await _parse(request_type, raw, context), context):
            yield response

    return handler


async def _decoded(
    request_type: type[Message], raw_requests: AsyncIterator[bytes]
) -> AsyncIterator[Message]:
    """A stream's requests parsed one by one: bytes that are not a request end the stream
    where they come, after the answers to the requests before them (the handler's errors)."""
    async for raw in raw_requests:
        yield _decode(request_type, raw)


def _bidirectional(behavior: _Bidirectional, request_type: type[Message]) -> _Bidirectional:
    async def handler(
        raw_requests: AsyncIterator[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Message]:
        async for response in behavior(_decoded(request_type, raw_requests), context):
            yield response

    return handler


def _method_handler(servicer: object, method: MethodDescriptor) -> grpc.RpcMethodHandler[Any, Any]:
    """The handler of one method; raises TypeError at startup, not at the first call, when the
    servicer cannot answer it (missing, or still the generated synchronous UNIMPLEMENTED stub:
    the wrappers await it)."""
    behavior: Any = getattr(servicer, method.name, None)
    request_type = message_factory.GetMessageClass(method.input_type)
    response_type = message_factory.GetMessageClass(method.output_type)
    where = f"{type(servicer).__name__}.{method.name}"
    if method.client_streaming and not method.server_streaming:
        raise TypeError(f"{method.full_name}: client streaming is not supported here")
    if method.client_streaming:
        if not inspect.isasyncgenfunction(behavior):
            raise TypeError(f"{where} must be an async generator method")
        return grpc.stream_stream_rpc_method_handler(
            _bidirectional(behavior, request_type),
            request_deserializer=None,  # raw bytes: _decoded turns them into requests
            response_serializer=response_type.SerializeToString,
        )
    if method.server_streaming:
        if not inspect.isasyncgenfunction(behavior):
            raise TypeError(f"{where} must be an async generator method")
        return grpc.unary_stream_rpc_method_handler(
            _streaming(behavior, request_type),
            request_deserializer=None,  # raw bytes: _parse turns them into the request
            response_serializer=response_type.SerializeToString,
        )
    if not inspect.iscoroutinefunction(behavior):
        raise TypeError(f"{where} must be an async method")
    return grpc.unary_unary_rpc_method_handler(
        _unary(behavior, request_type),
        request_deserializer=None,  # raw bytes: _parse turns them into the request
        response_serializer=response_type.SerializeToString,
    )


def add_service(
    servicer: service_pb2_grpc.JourneyConversionsServiceServicer, server: grpc.aio.Server
) -> None:
    """Registers every method of the service descriptor, as the generated
    add_JourneyConversionsServiceServicer_to_server does (generic and registered handlers; the
    registered ones are looked up first), with requests parsed by `_parse`."""
    handlers = {method.name: _method_handler(servicer, method) for method in SERVICE.methods}
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),)
    )
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
