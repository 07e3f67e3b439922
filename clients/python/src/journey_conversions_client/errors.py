"""The typed exception every failed call raises, with the service's google.rpc error details."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import cast

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "journeys.conversions.v1"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One wrong field of a request, as google.rpc.BadRequest.FieldViolation."""

    field: str
    description: str


class JourneyConversionsError(Exception):
    """A call failed: its gRPC status code, ErrorInfo reason and BadRequest field violations."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        field_violations: Sequence[FieldViolation] = (),
        attempts: int = 1,
    ) -> None:
        super().__init__(f"{code.name}: {message}" + (f" [{reason}]" if reason else ""))
        self.code = code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata: Mapping[str, str] = MappingProxyType(dict(metadata or {}))
        self.field_violations: tuple[FieldViolation, ...] = tuple(field_violations)
        self.attempts = attempts

    @classmethod
    def from_rpc_error(
        cls, error: grpc.aio.AioRpcError, *, attempts: int = 1
    ) -> JourneyConversionsError:
        """Builds the exception from a failed call, reading the google.rpc.Status it carries."""
        code = error.code()
        message = error.details() or ""
        reason = domain = ""
        metadata: dict[str, str] = {}
        violations: list[FieldViolation] = []
        try:
            # from_call reads only code(), details() and trailing_metadata(), which a
            # finished aio call's AioRpcError answers synchronously.
            status = rpc_status.from_call(cast(grpc.Call, error))
        except ValueError:
            # The rich status disagrees with the call's own status: keep the call's.
            status = None
        for detail in status.details if status is not None else ():
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                reason, domain = str(info.reason), str(info.domain)
                metadata = {str(k): str(v) for k, v in info.metadata.items()}
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations.extend(
                    FieldViolation(field=str(v.field), description=str(v.description))
                    for v in bad_request.field_violations
                )
        return cls(
            code,
            message,
            reason=reason,
            domain=domain,
            metadata=metadata,
            field_violations=violations,
            attempts=attempts,
        )
