"""Domain errors, and the one place that turns them into rich gRPC statuses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

ERROR_DOMAIN = "journeys.conversions.v1"


@dataclass(frozen=True, slots=True)
class Violation:
    field: str
    description: str


@dataclass
class ServiceError(Exception):
    """An error a caller can cause or act on; never mapped to INTERNAL."""

    reason: str  # UPPER_SNAKE_CASE, as google.rpc.ErrorInfo.reason
    message: str
    violations: Sequence[Violation] = field(default_factory=tuple)
    code: grpc.StatusCode = grpc.StatusCode.FAILED_PRECONDITION

    def __str__(self) -> str:
        return self.message


# An error travels in trailing metadata (grpc-message, and grpc-status-details-bin with the
# field violations), which clients refuse beyond 8 KiB (soft) to 16 KiB (hard): a request with
# thousands of wrong items, or one quoting a huge value, came back as a transport error instead
# of its INVALID_ARGUMENT (found by tests/api/test_fuzz_fields.py). The first violations within
# a size budget, and a count of the others, are enough to fix a request.
MAX_LISTED_VIOLATIONS = 10
_LISTED_BYTES = 2048  # UTF-8 bytes of the listed fields and descriptions together
_DESCRIPTION_CHARACTERS = 256


def _listed(violations: Sequence[Violation]) -> tuple[Violation, ...]:
    listed: list[Violation] = []
    used = 0
    for violation in violations:
        description = violation.description
        if len(description) > _DESCRIPTION_CHARACTERS:
            description = description[: _DESCRIPTION_CHARACTERS - 1] + "\u2026"
        size = len(violation.field.encode()) + len(description.encode())
        if len(listed) == MAX_LISTED_VIOLATIONS or (listed and used + size > _LISTED_BYTES):
            break
        listed.append(Violation(violation.field, description))
        used += size
    if len(listed) < len(violations):
        rest = len(violations) - len(listed)
        first_unlisted = violations[len(listed)].field
        listed.append(Violation(first_unlisted, f"and {rest} more violations, not listed"))
    return tuple(listed)


class InvalidArgument(ServiceError):
    def __init__(
        self,
        violations: Sequence[Violation],
        reason: str = "INVALID_ARGUMENT",
        *,
        listed: bool = False,  # already cut to what is listed (by another InvalidArgument)
    ) -> None:
        violations = tuple(violations) if listed else _listed(violations)
        message = "; ".join(f"{v.field}: {v.description}" for v in violations) or "invalid request"
        super().__init__(reason, message, violations, grpc.StatusCode.INVALID_ARGUMENT)


class NotFound(ServiceError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message, (), grpc.StatusCode.NOT_FOUND)


class AlreadyExists(ServiceError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message, (), grpc.StatusCode.ALREADY_EXISTS)


class FailedPrecondition(ServiceError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message, (), grpc.StatusCode.FAILED_PRECONDITION)


class Unauthenticated(ServiceError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message, (), grpc.StatusCode.UNAUTHENTICATED)


class PermissionDenied(ServiceError):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(reason, message, (), grpc.StatusCode.PERMISSION_DENIED)


class Unavailable(ServiceError):
    def __init__(self, message: str) -> None:
        super().__init__("DATABASE_UNAVAILABLE", message, (), grpc.StatusCode.UNAVAILABLE)


def under(prefix: str, error: ServiceError) -> ServiceError:
    """The error with its field violations placed under a request path (the store reports
    fields relative to the item it checked)."""
    if not error.violations:
        return error
    return InvalidArgument(
        [Violation(f"{prefix}.{v.field}", v.description) for v in error.violations],
        error.reason,
        listed=isinstance(error, InvalidArgument),
    )


def idempotency_conflict(kind: str, key: str) -> AlreadyExists:
    return AlreadyExists(
        "IDEMPOTENCY_KEY_REUSED",
        f"{kind} {key!r} was already recorded with a different payload",
    )


def to_grpc_status(error: ServiceError) -> grpc.Status:
    """The status with ErrorInfo, and BadRequest field violations when there are any."""
    details = []
    info = any_pb2.Any()
    info.Pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN))
    details.append(info)
    if error.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(
                    field=v.field, description=v.description
                )
                for v in error.violations
            ]
        )
        packed = any_pb2.Any()
        packed.Pack(bad)
        details.append(packed)
    code_number: int = error.code.value[0]
    status = status_pb2.Status(code=code_number, message=error.message, details=details)
    assert code_pb2.Code.Name(code_number)  # a known google.rpc.Code
    converted: grpc.Status = rpc_status.to_status(status)
    return converted
