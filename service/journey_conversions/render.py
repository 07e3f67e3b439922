"""Domain values to protobuf messages."""

from __future__ import annotations

from datetime import datetime, timedelta

import grpc
from google.protobuf import duration_pb2, timestamp_pb2
from journeys.conversions.v1 import (
    conversions_pb2,
    events_pb2,
    journey_pb2,
)

from journey_conversions import domain
from journey_conversions.errors import ServiceError
from journey_conversions.store import ingest, outbox


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def duration(value: timedelta) -> duration_pb2.Duration:
    result = duration_pb2.Duration()
    result.FromTimedelta(value)
    return result


def money(value: domain.Money | None) -> journey_pb2.Money | None:
    if value is None:
        return None
    return journey_pb2.Money(currency_code=value.currency_code, amount_micros=value.amount_micros)


def criterion(value: domain.Criterion) -> journey_pb2.GoalCriterion:
    result = journey_pb2.GoalCriterion(
        event_type=journey_pb2.GoalEventType.ValueType(value.event_type),
        attribute_name=value.attribute_name,
        list_ids=sorted(value.list_ids),
        message_ids=sorted(value.message_ids),
        url_patterns=list(value.url_patterns),
        form_ids=sorted(value.form_ids),
        product_ids=sorted(value.product_ids),
    )
    if value.attribute_value is not None:
        result.attribute_value = value.attribute_value
    return result


def journey(value: domain.Journey) -> journey_pb2.Journey:
    result = journey_pb2.Journey(
        journey_id=value.journey_id,
        display_name=value.display_name,
        purpose=journey_pb2.JourneyPurpose.ValueType(value.purpose),
        attribution_window=duration(value.window),
        exclude_machine_opens=value.exclude_machine_opens,
        versions=[
            journey_pb2.JourneyVersion(
                version=v.version,
                messages=[
                    journey_pb2.JourneyMessage(
                        message_id=m.message_id,
                        channel=journey_pb2.Channel.ValueType(m.channel),
                        step_id=m.step_id,
                        path=m.path,
                    )
                    for m in v.messages
                ],
            )
            for v in value.versions
        ],
    )
    if value.goal is not None:
        result.goal.CopyFrom(criterion(value.goal))
    for change in value.goal_history:
        entry = result.goal_history.add()
        if change.criterion is not None:
            entry.goal.CopyFrom(criterion(change.criterion))
        if change.effective_time is not None:
            entry.effective_time.CopyFrom(timestamp(change.effective_time))
    if value.create_time is not None:
        result.create_time.CopyFrom(timestamp(value.create_time))
    if value.update_time is not None:
        result.update_time.CopyFrom(timestamp(value.update_time))
    return result


def conversion(value: domain.ConversionDefinition) -> conversions_pb2.ConversionDefinition:
    result = conversions_pb2.ConversionDefinition(
        conversion_id=value.conversion_id,
        journey_id=value.journey_id,
        name=value.name,
        value=money(value.value),
        award_on_goal=value.award_on_goal,
        revision=value.revision,
    )
    if value.trigger is not None:
        result.trigger.CopyFrom(criterion(value.trigger))
    if value.create_time is not None:
        result.create_time.CopyFrom(timestamp(value.create_time))
    if value.update_time is not None:
        result.update_time.CopyFrom(timestamp(value.update_time))
    return result


def enrollment(value: domain.Enrollment) -> events_pb2.Enrollment:
    result = events_pb2.Enrollment(
        enrollment_id=value.enrollment_id,
        contact_id=value.contact_id,
        journey_id=value.journey_id,
        version=value.version,
        enter_time=timestamp(value.enter_time),
        exit_reason=events_pb2.ExitReason.ValueType(value.exit_reason),
        holdout=value.holdout,
    )
    if value.exit_time is not None:
        result.exit_time.CopyFrom(timestamp(value.exit_time))
    return result


def touchpoint(value: domain.Touchpoint) -> events_pb2.Touchpoint:
    return events_pb2.Touchpoint(
        event_id=value.event_id,
        contact_id=value.contact_id,
        journey_id=value.journey_id,
        version=value.version,
        message_id=value.message_id,
        channel=journey_pb2.Channel.ValueType(value.channel),
        action=events_pb2.TouchpointAction.ValueType(value.action),
        occur_time=timestamp(value.occur_time),
        machine_generated=value.machine_generated,
    )


def goal_event(value: domain.GoalEvent) -> events_pb2.GoalEvent:
    return events_pb2.GoalEvent(
        event_id=value.event_id,
        contact_id=value.contact_id,
        event_type=journey_pb2.GoalEventType.ValueType(value.event_type),
        occur_time=timestamp(value.occur_time),
        attribute_name=value.attribute_name,
        attribute_value=value.attribute_value,
        list_id=value.list_id,
        message_id=value.message_id,
        url=value.url,
        form_id=value.form_id,
        product_ids=sorted(value.product_ids),
        value=money(value.value),
        amends_event_id=value.amends_event_id,
    )


def award(value: domain.Award) -> conversions_pb2.ConversionAward:
    goal = value.conversion_id == domain.GOAL_CONVERSION
    return conversions_pb2.ConversionAward(
        contact_id=value.contact_id,
        journey_id=value.journey_id,
        enrollment_id=value.enrollment_id,
        version=value.version,
        kind=conversions_pb2.AWARD_KIND_GOAL if goal else conversions_pb2.AWARD_KIND_NAMED,
        conversion_id=value.conversion_id,
        source=conversions_pb2.AwardSource.ValueType(value.source),
        goal_event_id=value.goal_event_id,
        touchpoint_event_id=value.touchpoint_event_id,
        message_id=value.message_id,
        step_id=value.step_id,
        award_time=timestamp(value.award_time),
        value=money(value.value),
    )


def outcome(value: domain.Outcome) -> conversions_pb2.GoalEventOutcome:
    result = conversions_pb2.GoalEventOutcome(
        goal_event_id=value.goal_event_id,
        status=conversions_pb2.OutcomeStatus.ValueType(value.status),
        journey_id=value.journey_id,
        enrollment_id=value.enrollment_id,
    )
    if value.touchpoint is not None:
        result.touchpoint_event_id = value.touchpoint.event_id
        result.message_id = value.touchpoint.message_id
        result.touchpoint_time.CopyFrom(timestamp(value.touchpoint.occur_time))
    return result


def explanation(
    event: domain.GoalEvent, value: domain.Outcome
) -> conversions_pb2.GoalEventExplanation:
    result = conversions_pb2.GoalEventExplanation(
        goal_event=goal_event(event), outcome=outcome(value)
    )
    for candidate in value.candidates:
        entry = result.candidates.add(
            journey_id=candidate.journey_id,
            verdict=conversions_pb2.CandidateVerdict.ValueType(candidate.verdict),
            beaten_by_journey_id=candidate.beaten_by_journey_id,
            enrollment_id=candidate.enrollment_id,
        )
        if candidate.touchpoint is not None:
            entry.touchpoint_event_id = candidate.touchpoint.event_id
            entry.touchpoint_time.CopyFrom(timestamp(candidate.touchpoint.occur_time))
    return result


def conversion_event(value: outbox.StoredEvent) -> conversions_pb2.ConversionEvent:
    return conversions_pb2.ConversionEvent(
        position=value.position,
        type=conversions_pb2.ConversionEventType.ValueType(value.event_type),
        award=award(value.award),
        commit_time=timestamp(value.commit_time),
    )


def item_error(error: ServiceError) -> events_pb2.ItemError:
    code: grpc.StatusCode = error.code
    return events_pb2.ItemError(
        code=code.name,
        reason=error.reason,
        message=error.message,
        field_violations=[
            events_pb2.FieldViolation(field=v.field, description=v.description)
            for v in error.violations
        ],
    )


def item_result(index: int, event_id: str, value: ingest.ItemResult) -> events_pb2.ItemResult:
    result = events_pb2.ItemResult(
        index=index, event_id=event_id, status=events_pb2.ItemStatus.ValueType(value.status)
    )
    if value.error is not None:
        result.error.CopyFrom(item_error(value.error))
    return result


def money_list(values: dict[str, int]) -> list[journey_pb2.Money]:
    return [journey_pb2.Money(currency_code=c, amount_micros=m) for c, m in sorted(values.items())]
