"""A journey report, from the store's figures to protobuf."""

from __future__ import annotations

from journeys.conversions.v1 import events_pb2, journey_pb2, report_pb2

from journey_conversions import cohorts
from journey_conversions.render import duration, money_list, timestamp
from journey_conversions.stats import Difference, Rate
from journey_conversions.store import reports


def rate(value: Rate) -> report_pb2.RateEstimate:
    return report_pb2.RateEstimate(
        successes=value.successes,
        trials=value.trials,
        rate=value.rate,
        lower=value.lower,
        upper=value.upper,
    )


def difference(value: Difference) -> report_pb2.RateDifference:
    result = report_pb2.RateDifference(
        difference=value.difference,
        lower=value.lower,
        upper=value.upper,
        p_value=value.p_value,
        sufficient_data=value.sufficient_data,
        note=value.note,
    )
    if value.relative is not None:
        result.relative_difference = value.relative
    return result


def holdout(value: cohorts.HoldoutLift) -> report_pb2.HoldoutLift:
    result = report_pb2.HoldoutLift(treated=rate(value.treated), holdout=rate(value.holdout))
    if value.lift is not None:
        result.lift.CopyFrom(difference(value.lift))
    return result


def time_to_conversion(value: cohorts.TimeToConversion) -> report_pb2.TimeToConversion:
    result = report_pb2.TimeToConversion(conversions=value.conversions)
    for name in (
        "median_from_entry",
        "p90_from_entry",
        "median_from_last_touch",
        "p90_from_last_touch",
    ):
        if (span := getattr(value, name)) is not None:
            getattr(result, name).CopyFrom(duration(span))
    return result


def segment(value: cohorts.SegmentFigures) -> report_pb2.SegmentReport:
    return report_pb2.SegmentReport(
        key=value.key,
        reached=value.reached,
        goal_conversions=value.goal_conversions,
        conversion_rate_reached=rate(value.conversion_rate),
        named_conversions=[
            report_pb2.ConversionCount(conversion_id=c, count=n)
            for c, n in sorted(value.named.items())
        ],
    )


def version(value: cohorts.VersionFigures) -> report_pb2.VersionReport:
    result = report_pb2.VersionReport(
        version=value.version,
        entered=value.entered,
        engaged=value.engaged,
        goal_conversions=value.goal_conversions,
        conversion_rate_entered=rate(value.rate_entered),
        conversion_rate_engaged=rate(value.rate_engaged),
        holdout=holdout(value.holdout),
        time_to_conversion=time_to_conversion(value.time_to_conversion),
        value=money_list(value.value),
    )
    if value.difference_from_baseline is not None:
        result.difference_from_baseline.CopyFrom(difference(value.difference_from_baseline))
    return result


def report(value: reports.Report) -> report_pb2.JourneyReport:
    result = report_pb2.JourneyReport(
        journey_id=value.journey_id,
        version=value.version,
        start_time=timestamp(value.start_time),
        end_time=timestamp(value.end_time),
        entered=value.entered,
        active=value.active,
        exited=value.exited,
        engaged=value.engaged,
        messages=[
            report_pb2.MessageReport(
                message_id=m.message_id,
                channel=journey_pb2.Channel.ValueType(m.channel),
                touchpoints=[
                    report_pb2.ActionCount(action=events_pb2.TouchpointAction.ValueType(a), count=n)
                    for a, n in sorted(m.touchpoints.items())
                ],
                credited_conversions=m.credited_conversions,
                credits=[
                    report_pb2.ModelCredit(
                        model=report_pb2.CreditModel.Value(f"CREDIT_MODEL_{name.upper()}"),
                        conversions=credit.conversions,
                        value=[
                            report_pb2.FractionalMoney(currency_code=c, amount_micros=v)
                            for c, v in sorted(credit.value.items())
                        ],
                    )
                    for name, credit in m.credits.items()
                    if value.full
                ],
            )
            for m in value.messages
        ],
        goal_conversions=value.goal_conversions,
        conversion_rate_entered=value.goal_conversions / value.entered if value.entered else 0.0,
        conversion_rate_engaged=value.goal_conversions / value.engaged if value.engaged else 0.0,
        repeat_goal_events=value.repeat_goal_events,
        value=money_list(value.value),
        named_conversions=[
            report_pb2.NamedConversionReport(
                conversion_id=n.conversion_id,
                name=n.name,
                count=n.count,
                value=money_list(n.value),
            )
            for n in value.named
        ],
        goal_events_credited_elsewhere=value.credited_elsewhere,
    )
    result.credited_elsewhere.extend(
        report_pb2.JourneyCount(journey_id=j, count=n) for j, n in value.credited_elsewhere_top
    )
    result.time_zone = value.time_zone
    result.days.extend(
        report_pb2.DayFigures(
            date=d.day.isoformat(),
            goal_conversions=d.goal_conversions,
            named_conversions=d.named_conversions,
            value=money_list(d.value),
        )
        for d in value.days
    )
    if value.cohort is not None:
        result.versions.extend(version(v) for v in value.cohort.versions)
        result.baseline_version = value.cohort.baseline_version
        result.holdout.CopyFrom(holdout(value.cohort.holdout))
        result.time_to_conversion.CopyFrom(time_to_conversion(value.cohort.time_to_conversion))
        result.steps.extend(segment(s) for s in value.cohort.steps)
        result.paths.extend(segment(p) for p in value.cohort.paths)
    return result
