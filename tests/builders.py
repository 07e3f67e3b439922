"""Request builders for tests: short, readable journeys and events relative to now."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, cast

import grpc
from google.protobuf import timestamp_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from journeys.conversions.v1 import events_pb2, journey_pb2
from journeys.conversions.v1 import service_pb2 as pb

if TYPE_CHECKING:
    from journeys.conversions.v1.service_pb2_grpc import (
        JourneyConversionsServiceAsyncStub as Stub,
    )

__all__ = ["Stub"]

NOW = datetime.now(UTC).replace(microsecond=0)


def ts(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def ago(**delta: float) -> timestamp_pb2.Timestamp:
    """A timestamp `delta` before the moment the test module was imported."""
    return ts(NOW - timedelta(**delta))


def message(
    message_id: str, channel: str = "EMAIL", step_id: str = ""
) -> journey_pb2.JourneyMessage:
    return journey_pb2.JourneyMessage(
        message_id=message_id,
        channel=journey_pb2.Channel.Value(f"CHANNEL_{channel}"),
        step_id=step_id,
    )


def goal(
    event_type: str,
    *,
    attribute_name: str = "",
    attribute_value: str | None = None,
    list_ids: Sequence[str] = (),
    message_ids: Sequence[str] = (),
    url_patterns: Sequence[str] = (),
    form_ids: Sequence[str] = (),
    product_ids: Sequence[str] = (),
) -> journey_pb2.GoalCriterion:
    return journey_pb2.GoalCriterion(
        event_type=journey_pb2.GoalEventType.Value(f"GOAL_EVENT_TYPE_{event_type}"),
        attribute_name=attribute_name,
        attribute_value=attribute_value,
        list_ids=list_ids,
        message_ids=message_ids,
        url_patterns=url_patterns,
        form_ids=form_ids,
        product_ids=product_ids,
    )


def define_journey(
    journey_id: str,
    messages: Sequence[journey_pb2.JourneyMessage] = (),
    goal_criterion: journey_pb2.GoalCriterion | None = None,
    version: int = 1,
    request_id: str | None = None,
    window_days: float | None = None,
    exclude_machine_opens: bool = False,
) -> pb.DefineJourneyRequest:
    journey = journey_pb2.Journey(
        journey_id=journey_id,
        versions=[journey_pb2.JourneyVersion(version=version, messages=list(messages))],
        exclude_machine_opens=exclude_machine_opens,
    )
    if window_days is not None:
        journey.attribution_window.FromTimedelta(timedelta(days=window_days))
    if goal_criterion is not None:
        journey.goal.CopyFrom(goal_criterion)
    return pb.DefineJourneyRequest(
        request_id=request_id or f"define-{journey_id}-{version}", journey=journey
    )


def enter(
    enrollment_id: str,
    contact_id: str,
    journey_id: str,
    at: timestamp_pb2.Timestamp,
    version: int = 1,
    holdout: bool = False,
) -> pb.EnterJourneyRequest:
    return pb.EnterJourneyRequest(
        enrollment=events_pb2.Enrollment(
            enrollment_id=enrollment_id,
            contact_id=contact_id,
            journey_id=journey_id,
            version=version,
            enter_time=at,
            holdout=holdout,
        )
    )


def exit_(enrollment_id: str, at: timestamp_pb2.Timestamp) -> pb.ExitJourneyRequest:
    return pb.ExitJourneyRequest(
        enrollment_id=enrollment_id,
        exit_time=at,
        exit_reason=events_pb2.EXIT_REASON_COMPLETED,
    )


def touchpoint(
    event_id: str,
    contact_id: str,
    journey_id: str,
    message_id: str,
    at: timestamp_pb2.Timestamp,
    channel: str = "EMAIL",
    action: str = "DELIVERED",
    version: int = 1,
    machine_generated: bool = False,
) -> events_pb2.Touchpoint:
    return events_pb2.Touchpoint(
        event_id=event_id,
        contact_id=contact_id,
        journey_id=journey_id,
        version=version,
        message_id=message_id,
        channel=journey_pb2.Channel.Value(f"CHANNEL_{channel}"),
        action=events_pb2.TouchpointAction.Value(f"TOUCHPOINT_ACTION_{action}"),
        occur_time=at,
        machine_generated=machine_generated,
    )


def goal_event(
    event_id: str,
    contact_id: str,
    event_type: str,
    at: timestamp_pb2.Timestamp,
    *,
    attribute_name: str = "",
    attribute_value: str = "",
    list_id: str = "",
    message_id: str = "",
    url: str = "",
    form_id: str = "",
    product_ids: Sequence[str] = (),
    value: journey_pb2.Money | None = None,
) -> events_pb2.GoalEvent:
    return events_pb2.GoalEvent(
        event_id=event_id,
        contact_id=contact_id,
        event_type=journey_pb2.GoalEventType.Value(f"GOAL_EVENT_TYPE_{event_type}"),
        occur_time=at,
        attribute_name=attribute_name,
        attribute_value=attribute_value,
        list_id=list_id,
        message_id=message_id,
        url=url,
        form_id=form_id,
        product_ids=product_ids,
        value=value,
    )


def tenant(name: str) -> tuple[tuple[str, str]]:
    return (("x-tenant-id", name),)


def field_violations(error: grpc.aio.AioRpcError) -> dict[str, str]:
    """field -> description of the BadRequest detail of a failed call."""
    status = rpc_status.from_call(cast(grpc.Call, error))
    found: dict[str, str] = {}
    if status is None:
        return found
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            found.update({v.field: v.description for v in bad.field_violations})
    return found


def error_reason(error: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(cast(grpc.Call, error))
    if status is None:
        return ""
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return str(info.reason)
    return ""
