"""The report's cohort figures through the real server equal the report model's, computed from
scratch over the raw events, whatever the delivery order, repeats and batching.

Random worlds (two versions per journey, holdout enrollments, late and repeated events) are
delivered as in test_attribution_properties; then, for every journey and a random range,
version and baseline, GetJourneyReport must give the model's counts, rates and intervals,
comparisons, holdout lift and time to conversion (tests/report_model.py).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from google.protobuf import duration_pb2
from hypothesis import event, given, note, settings
from hypothesis import strategies as st
from journeys.conversions.v1 import report_pb2
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions.server import App
from journey_conversions.store import rebuild
from tests.api.test_attribution_properties import (
    BASE,
    SERVER_HEALTH_CHECKS,
    VERSIONS,
    WORLDS,
    Metadata,
    deliver,
    layout,
    tasks_of,
    ts,
)
from tests.hypothesis_profiles import examples
from tests.report_model import (
    MODELS,
    ModelDifference,
    ModelRate,
    ModelVersion,
    cohort,
    credited_elsewhere,
    days,
    message_credits,
    participation,
    segments,
)
from tests.unit.strategies import World

if TYPE_CHECKING:
    from tests.builders import Stub

REL, ABS = 1e-9, 1e-12  # floating-point agreement of two implementations


def assert_rate(found: report_pb2.RateEstimate, expected: ModelRate) -> None:
    assert (found.successes, found.trials) == (expected.successes, expected.trials)
    assert (found.rate, found.lower, found.upper) == pytest.approx(
        (expected.rate, expected.lower, expected.upper), rel=REL, abs=ABS
    )


def assert_difference(found: report_pb2.RateDifference, expected: ModelDifference | None) -> None:
    numbers = (found.difference, found.lower, found.upper, found.p_value)
    assert all(math.isfinite(n) for n in numbers)
    assert found.lower <= found.difference <= found.upper
    if expected is None:  # an arm without entries: nothing the model can compare
        return
    assert numbers == pytest.approx(
        (expected.difference, expected.lower, expected.upper, expected.p_value), rel=REL, abs=ABS
    )
    assert found.sufficient_data == expected.sufficient_data
    assert (found.note == "") == expected.sufficient_data


def seconds(value: duration_pb2.Duration) -> float:
    return value.ToTimedelta().total_seconds()


def assert_version(found: report_pb2.VersionReport, expected: ModelVersion, baseline: int) -> None:
    assert found.version == expected.version
    counts = (found.entered, found.engaged, found.goal_conversions)
    assert counts == (expected.entered, expected.engaged, expected.goal_conversions)
    assert_rate(found.conversion_rate_entered, expected.rate_entered)
    assert_rate(found.conversion_rate_engaged, expected.rate_engaged)
    compared = baseline not in (0, expected.version) and expected.difference is not None
    assert found.HasField("difference_from_baseline") == compared
    if compared:
        assert_difference(found.difference_from_baseline, expected.difference)
    assert_rate(found.holdout.treated, expected.treated_goal_met)
    assert_rate(found.holdout.holdout, expected.holdout_goal_met)
    assert found.holdout.HasField("lift") == (expected.lift is not None)
    if found.holdout.HasField("lift"):
        assert_difference(found.holdout.lift, expected.lift)
    timing = found.time_to_conversion
    assert timing.conversions == expected.conversions_timed
    if expected.from_entry is None:
        assert not timing.HasField("median_from_entry")
    else:
        assert (seconds(timing.median_from_entry), seconds(timing.p90_from_entry)) == (
            pytest.approx(expected.from_entry, abs=1e-5)
        )
    if expected.from_last_touch is not None:
        last_touch = (seconds(timing.median_from_last_touch), seconds(timing.p90_from_last_touch))
        assert last_touch == pytest.approx(expected.from_last_touch, abs=1e-5)


DAWN = datetime(1970, 1, 1, tzinfo=UTC)
# Every row that writes keep for reports and attribution, as the incremental path left it
# (touchpoint counts summed over their write shards).
DERIVED = (
    "select enrollment_id, first_touch_time, first_human_touch_time, goal_met_time,"
    " converted_time, last_touch_time, last_human_touch_time from enrollments"
    " where tenant_id = $1",
    "select * from enrollment_reach where tenant_id = $1",
    "select * from goal_outcomes where tenant_id = $1",
    "select * from awards where tenant_id = $1",
    "select * from conversion_credits where tenant_id = $1",
    "select * from credited_elsewhere where tenant_id = $1",
    "select journey_id, day, message_id, version, action, sum(touchpoints)"
    " from touchpoint_counts where tenant_id = $1 group by 1, 2, 3, 4, 5",
)


async def derived_rows(pool: asyncpg.Pool, tenant_id: str) -> list[list[tuple[Any, ...]]]:
    async with pool.acquire() as conn:
        return [
            sorted(tuple(r.values()) for r in await conn.fetch(query, tenant_id))
            for query in DERIVED
        ]


# The cohort counts the triggers kept, and the same counted from scratch over the enrollments
# and reach rows (migration 0005).
KEPT_COUNTS = (
    "select journey_id, day, fact, key, version, holdout, sum(n)::bigint from cohort_counts"
    " where tenant_id = $1 group by 1, 2, 3, 4, 5, 6 having sum(n) <> 0"
)
COUNTED_COUNTS = """
select e.journey_id, report_day(f.basis), f.fact, '', e.version, e.holdout, count(*)
from enrollments e cross join lateral enrollment_facts(e.enter_time, e.exit_time,
    e.first_touch_time, e.first_human_touch_time, e.goal_met_time, e.converted_time,
    e.last_touch_time, e.last_human_touch_time) f
where e.tenant_id = $1 group by 1, 2, 3, 4, 5, 6
union all
select r.journey_id, report_day(r.enter_time), f.fact, r.key, r.version, r.holdout, count(*)
from enrollment_reach r cross join lateral reach_facts(r.segment, r.first_time, r.converted_time) f
where r.tenant_id = $1 group by 1, 2, 3, 4, 5, 6
"""


async def assert_rebuild_changes_nothing(pool: asyncpg.Pool, tenant_id: str) -> None:
    """The facts, outcomes, awards and credits that writes kept incrementally, whatever the
    order, are those a from-scratch rebuild over the raw rows computes; and the cohort counts
    are those of the enrollments and reach rows."""
    before = await derived_rows(pool, tenant_id)
    rebuilt = await rebuild.rebuild_tenant(pool, tenant_id)
    assert rebuilt.award_changes == 0
    assert await derived_rows(pool, tenant_id) == before
    async with pool.acquire() as conn:
        kept = sorted(tuple(r.values()) for r in await conn.fetch(KEPT_COUNTS, tenant_id))
        counted = sorted(tuple(r.values()) for r in await conn.fetch(COUNTED_COUNTS, tenant_id))
    assert kept == counted


# UTC, daylight saving on either side of the equator, and offsets of 30 and 45 minutes.
ZONES = ("", "Europe/Paris", "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Chatham")


def assert_activity(
    report: report_pb2.JourneyReport,
    world: World,
    journey_id: str,
    version: int,
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
) -> None:
    """Participation, days, goal events credited elsewhere and message credits equal the
    model's."""
    model = world.model()
    enrollments = list(world.enrollments)
    rules = world.journeys[journey_id]
    touches: dict[tuple[str, int], int] = {}
    for t in world.touchpoints:
        # Every message is in every version, so an unversioned touchpoint counts for each.
        in_range = t.journey_id == journey_id and start <= t.occur_time < end
        if in_range and (not version or t.version in (0, version)):
            touches[t.message_id, t.action] = touches.get((t.message_id, t.action), 0) + 1
    assert {
        (m.message_id, int(c.action)): c.count for m in report.messages for c in m.touchpoints
    } == touches
    counts = (report.entered, report.active, report.exited, report.engaged)
    assert counts == participation(rules, version, enrollments, list(world.touchpoints), start, end)
    if 0 < report.engaged < report.active:
        event("a range with active but unengaged enrollments")
    expected_days = days(journey_id, version, enrollments, model.awards, start, end, zone)
    found_days = [
        (
            d.date,
            d.goal_conversions,
            d.named_conversions,
            {m.currency_code: m.amount_micros for m in d.value},
        )
        for d in report.days
    ]
    assert found_days == expected_days
    assert report.time_zone == zone.key
    elsewhere = credited_elsewhere(
        journey_id, version, enrollments, list(world.goal_events), model.outcomes, start, end
    )
    assert report.goal_events_credited_elsewhere == sum(elsewhere.values())
    top = sorted(elsewhere.items(), key=lambda item: (-item[1], item[0]))[:10]
    assert [(j.journey_id, j.count) for j in report.credited_elsewhere] == top
    if elsewhere:
        event("a journey with goal events credited elsewhere")
    expected_credits = message_credits(
        world.journeys[journey_id],
        version,
        enrollments,
        list(world.touchpoints),
        model.awards,
        start,
        end,
    )
    for message in report.messages:
        expected = expected_credits.get(message.message_id, {})
        found = {
            report_pb2.CreditModel.Name(c.model).removeprefix("CREDIT_MODEL_").lower(): c
            for c in message.credits
        }
        assert sorted(found) == sorted(MODELS)
        for name in MODELS:
            conversions, value = expected.get(name, (0.0, {}))
            assert found[name].conversions == pytest.approx(conversions, rel=REL, abs=1e-9)
            found_value = {v.currency_code: v.amount_micros for v in found[name].value}
            assert found_value.keys() == value.keys()
            for currency, micros in value.items():
                assert found_value[currency] == pytest.approx(micros, rel=REL, abs=1e-6)
        if any(0.0 < conversions < 1.0 for conversions, _ in expected.values()):
            event("a message with a fractional share")


def assert_segments(
    report: report_pb2.JourneyReport,
    world: World,
    journey_id: str,
    versions: list[int],
    start: datetime,
    end: datetime,
) -> None:
    """Steps and paths equal the model's."""
    journey_messages = world.messages[journey_id]
    index = {m.message_id: i for i, m in enumerate(journey_messages)}

    def where(version: int, message_id: str) -> tuple[str, str]:
        return layout(version, index[message_id], journey_messages[index[message_id]])

    expected_steps, expected_paths = segments(
        world.journeys[journey_id],
        versions,
        where,
        list(index),
        list(world.enrollments),
        list(world.touchpoints),
        world.model().awards,
        start,
        end,
    )
    for found, expected in ((report.steps, expected_steps), (report.paths, expected_paths)):
        assert [
            (
                s.key,
                s.reached,
                s.conversion_rate_reached.successes,
                s.goal_conversions,
                {c.conversion_id: c.count for c in s.named_conversions},
            )
            for s in found
        ] == [(e.key, e.reached, e.converted, e.goal_conversions, e.named) for e in expected]
        for s in found:
            assert s.conversion_rate_reached.trials == s.reached
    if any(s.reached for s in expected_steps):
        event("a step reached")
    if any(s.named for s in expected_steps):
        event("a named conversion at a step")


def ranges(world: World) -> st.SearchStrategy[tuple[datetime | None, datetime | None]]:
    """Unset (all time), or edges on the world's hour grid, at its events' own times, and a
    few hours after them (a range starting on the same UTC day as an event, before or after
    mid-day: the counts of that day are taken as before the range or in it, and the
    enrollments between the day's edge and the start read raw, ReportQuery.count_edge)."""
    times = sorted(
        {e.enter_time for e in world.enrollments}
        | {e.exit_time for e in world.enrollments if e.exit_time}
        | {g.occur_time for g in world.goal_events}
        | {t.occur_time for t in world.touchpoints}
    )
    edge = st.one_of(
        st.none(),
        st.integers(0, 25 * 24).map(lambda h: BASE + timedelta(hours=h)),
        st.sampled_from(times) if times else st.none(),
        st.tuples(st.sampled_from(times), st.sampled_from((1, 2, 5, 11, 13))).map(
            lambda t_h: t_h[0] + timedelta(hours=t_h[1])
        )
        if times
        else st.none(),
    )

    def ordered(edges: tuple[datetime | None, datetime | None]) -> bool:
        start, end = edges
        return start is None or end is None or start < end

    return st.tuples(edge, edge).filter(ordered)


@settings(
    max_examples=examples(40, 1000),
    deadline=None,
    suppress_health_check=SERVER_HEALTH_CHECKS,
)
@given(world=WORLDS, data=st.data())
async def test_report_cohort_figures_equal_the_models(
    stub: Stub, app: App, world: World, data: st.DataObject
) -> None:
    md: Metadata = (("x-tenant-id", f"report-{uuid.uuid4().hex}"),)
    note(f"journeys={world.journeys!r}")
    note(f"enrollments={world.enrollments!r}")
    note(f"touchpoints={world.touchpoints!r}")
    note(f"goal_events={world.goal_events!r}")
    await deliver(stub, md, tasks_of(world), data)
    await assert_rebuild_changes_nothing(app.pool, md[0][1])
    awards = world.model().awards
    now = datetime.now(UTC)
    for journey_id, rules in world.journeys.items():
        start, end = data.draw(ranges(world), label="range")
        version = data.draw(st.sampled_from((0, 0, *VERSIONS)), label="version")
        baseline = data.draw(st.sampled_from((0, 0, *VERSIONS)), label="baseline")
        zone = data.draw(st.sampled_from(ZONES), label="zone")
        request = pb.GetJourneyReportRequest(
            journey_id=journey_id, version=version, baseline_version=baseline, time_zone=zone
        )
        if start is not None:
            request.start_time.CopyFrom(ts(start))
        if end is not None:
            request.end_time.CopyFrom(ts(end))
        report = (await stub.GetJourneyReport(request, metadata=md)).report
        start_, end_ = start or DAWN, end or now
        versions = [version] if version else list(VERSIONS)
        assert_activity(report, world, journey_id, version, start_, end_, ZoneInfo(zone or "UTC"))
        expected_baseline, expected = cohort(
            rules,
            versions,
            list(world.enrollments),
            list(world.touchpoints),
            list(world.goal_events),
            awards,
            start_,
            end_,
            baseline,
        )
        assert_segments(report, world, journey_id, versions, start_, end_)
        assert report.baseline_version == expected_baseline
        assert [v.version for v in report.versions] == [v.version for v in expected]
        for found, model in zip(report.versions, expected, strict=True):
            assert_version(found, model, expected_baseline)
            if model.goal_conversions:
                event("a version with conversions")
            if model.holdout_goal_met.trials:
                event("a version with holdout entries")
            if model.engaged != model.entered:
                event("a version with unengaged entries")
