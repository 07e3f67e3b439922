"""A reference model of the journey report's cohort figures, written straight from the README's
definitions over the raw events of a world and the attribution model's awards.

It shares no code with the service's report path: counts come from scanning every event, the
statistics from statsmodels and the percentiles from numpy (method "linear", Hyndman and Fan's
definition 7), so a test that compares the two checks the service's SQL, facts and formulas.

Definitions (the cohort of a range [start, end)):
- entered: enrollments of the version and arm (treated or holdout) that entered in the range;
- engaged: of those, the ones with a touchpoint of the journey at a time t with
  enter <= t <= exit and t < end, not a machine-generated open when the journey excludes them;
- converted: of those, the ones holding the goal conversion (an award with the empty
  conversion id) at a time before end;
- goal met: of those, the ones with a goal event of their contact at a time t with
  enter <= t <= exit and t < end that matches the journey's goal in force at t;
- the baseline is the requested version, else the lowest version with treated entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
from statsmodels.stats.proportion import (  # type: ignore[import-untyped]
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from journey_conversions.domain import (
    GOAL_CONVERSION,
    Action,
    Enrollment,
    GoalEvent,
    JourneyRules,
    Touchpoint,
)
from tests.reference_model import (
    ModelAward,
    ModelOutcome,
    criterion_at,
    criterion_meets,
    is_active,
    touchpoint_qualifies,
)


@dataclass(frozen=True)
class ModelRate:
    successes: int
    trials: int
    rate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class ModelDifference:
    difference: float
    lower: float
    upper: float
    p_value: float
    sufficient_data: bool


@dataclass(frozen=True)
class ModelVersion:
    version: int
    entered: int
    engaged: int
    goal_conversions: int
    rate_entered: ModelRate
    rate_engaged: ModelRate
    difference: ModelDifference | None
    treated_goal_met: ModelRate
    holdout_goal_met: ModelRate
    lift: ModelDifference | None
    conversions_timed: int
    from_entry: tuple[float, float] | None  # seconds: median, p90
    from_last_touch: tuple[float, float] | None


def rate(successes: int, trials: int) -> ModelRate:
    if trials == 0:
        return ModelRate(0, 0, 0.0, 0.0, 1.0)
    lower, upper = proportion_confint(successes, trials, alpha=0.05, method="wilson")
    return ModelRate(successes, trials, successes / trials, float(lower), float(upper))


def difference(x1: int, n1: int, x0: int, n0: int) -> ModelDifference | None:
    """Arm 1 against baseline 0; None when an arm has no trials (the report leaves it unset)."""
    if n1 == 0 or n0 == 0:
        return None
    lower, upper = confint_proportions_2indep(x1, n1, x0, n0, compare="diff", method="newcomb")
    pooled = (x1 + x0) / (n1 + n0)
    if pooled in (0.0, 1.0):
        p_value = 1.0
    else:
        _, p = proportions_ztest([x1, x0], [n1, n0])
        p_value = float(p)
    sufficient = min(x1, n1 - x1, x0, n0 - x0) >= 10
    return ModelDifference(x1 / n1 - x0 / n0, float(lower), float(upper), p_value, sufficient)


def _during(e: Enrollment, when: datetime, end: datetime) -> bool:
    return e.enter_time <= when < end and (e.exit_time is None or when <= e.exit_time)


def _percentiles(values: list[float]) -> tuple[float, float] | None:
    if not values:
        return None
    p50, p90 = np.percentile(np.array(values), [50, 90], method="linear")
    return (float(p50), float(p90))


@dataclass(frozen=True)
class _Arm:
    entered: int
    engaged: int
    converted: int
    converted_engaged: int
    goal_met: int


def cohort(
    rules: JourneyRules,
    versions: list[int],
    enrollments: list[Enrollment],
    touchpoints: list[Touchpoint],
    goal_events: list[GoalEvent],
    awards: dict[tuple[str, str], ModelAward],
    start: datetime,
    end: datetime,
    baseline: int = 0,
) -> tuple[int, list[ModelVersion]]:
    """The baseline version and each version's figures, for the journey of `rules`."""
    touch_times = {t.event_id: t.occur_time for t in touchpoints}

    def engaged(e: Enrollment) -> bool:
        return any(
            t.contact_id == e.contact_id
            and t.journey_id == e.journey_id
            and _during(e, t.occur_time, end)
            and not (
                rules.exclude_machine_opens and t.machine_generated and t.action == Action.OPENED
            )
            for t in touchpoints
        )

    def conversion(e: Enrollment) -> ModelAward | None:
        award = awards.get((e.enrollment_id, GOAL_CONVERSION))
        return award if award is not None and award.award_time < end else None

    def goal_met(e: Enrollment) -> bool:
        for g in goal_events:
            goal = criterion_at(rules.goal_history, g.occur_time)
            if (
                g.contact_id == e.contact_id
                and _during(e, g.occur_time, end)
                and goal is not None
                and criterion_meets(goal, g)
            ):
                return True
        return False

    def members(version: int, holdout: bool) -> list[Enrollment]:
        return [
            e
            for e in enrollments
            if e.journey_id == rules.journey_id
            and e.version == version
            and e.holdout == holdout
            and start <= e.enter_time < end
        ]

    def arm(version: int, holdout: bool) -> _Arm:
        group = members(version, holdout)
        return _Arm(
            entered=len(group),
            engaged=sum(engaged(e) for e in group),
            converted=sum(conversion(e) is not None for e in group),
            converted_engaged=sum(conversion(e) is not None and engaged(e) for e in group),
            goal_met=sum(goal_met(e) for e in group),
        )

    all_versions = sorted({e.version for e in enrollments} | set(versions))
    treated = {v: arm(v, False) for v in all_versions}
    held = {v: arm(v, True) for v in all_versions}
    if not baseline:
        baseline = min((v for v in all_versions if treated[v].entered), default=0)
    base = treated.get(baseline)
    result = []
    for v in sorted(versions):
        t, h = treated[v], held[v]
        converted = [(e, award) for e in members(v, False) if (award := conversion(e)) is not None]
        result.append(
            ModelVersion(
                version=v,
                entered=t.entered,
                engaged=t.engaged,
                goal_conversions=t.converted,
                rate_entered=rate(t.converted, t.entered),
                rate_engaged=rate(t.converted_engaged, t.engaged),
                difference=(
                    difference(t.converted, t.entered, base.converted, base.entered)
                    if base is not None and v != baseline
                    else None
                ),
                treated_goal_met=rate(t.goal_met, t.entered),
                holdout_goal_met=rate(h.goal_met, h.entered),
                lift=difference(t.goal_met, t.entered, h.goal_met, h.entered),
                conversions_timed=len(converted),
                from_entry=_percentiles(
                    [(a.award_time - e.enter_time).total_seconds() for e, a in converted]
                ),
                from_last_touch=_percentiles(
                    [
                        (a.award_time - touch_times[a.touchpoint_event_id]).total_seconds()
                        for _, a in converted
                    ]
                ),
            )
        )
    return baseline, result


def days(
    journey_id: str,
    version: int,
    enrollments: list[Enrollment],
    awards: dict[tuple[str, str], ModelAward],
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
) -> list[tuple[str, int, int, dict[str, int]]]:
    """(date, goal conversions, named conversions, value per currency) for every local day from
    the journey's first entry or award (or the range's start, if later) to the range's end."""
    journey_of = {e.enrollment_id: e for e in enrollments}
    own = {
        key: award for key, award in awards.items() if journey_of[key[0]].journey_id == journey_id
    }
    firsts = [e.enter_time for e in enrollments if e.journey_id == journey_id]
    firsts += [a.award_time for a in own.values()]
    if not firsts or min(firsts) >= end:
        return []
    day = max(start, min(firsts)).astimezone(zone).date()
    last = (end - timedelta(microseconds=1)).astimezone(zone).date()
    result = []
    while day <= last:
        goal = named = 0
        value: dict[str, int] = {}
        for (enrollment_id, conversion_id), award in own.items():
            if version and journey_of[enrollment_id].version != version:
                continue
            if not (start <= award.award_time < end):
                continue
            if award.award_time.astimezone(zone).date() != day:
                continue
            if conversion_id == GOAL_CONVERSION:
                goal += 1
            else:
                named += 1
            if award.value is not None:
                currency = award.value.currency_code
                value[currency] = value.get(currency, 0) + award.value.amount_micros
        result.append((day.isoformat(), goal, named, value))
        day += timedelta(days=1)
    return result


def credited_elsewhere(
    journey_id: str,
    version: int,
    enrollments: list[Enrollment],
    goal_events: list[GoalEvent],
    outcomes: dict[str, ModelOutcome],
    start: datetime,
    end: datetime,
) -> dict[str, int]:
    """Per other journey, the goal events in the range of this journey's participants (active in
    an enrollment of the version at the event's time) that were credited to it."""
    counts: dict[str, int] = {}
    for g in goal_events:
        outcome = outcomes[g.event_id]
        if outcome.journey_id in ("", journey_id) or not start <= g.occur_time < end:
            continue
        if any(
            e.journey_id == journey_id
            and e.contact_id == g.contact_id
            and (not version or e.version == version)
            and is_active(e, g.occur_time)
            for e in enrollments
        ):
            counts[outcome.journey_id] = counts.get(outcome.journey_id, 0) + 1
    return counts


MODELS = ("last_touch", "first_touch", "linear", "position_based", "time_decay")


def _split(touches: list[Touchpoint], at: datetime) -> dict[str, list[float]]:
    """Per model, each touchpoint's share (in the given (time, event id) order)."""
    n = len(touches)
    if n == 1:
        position = [1.0]
    elif n == 2:
        position = [0.5, 0.5]
    else:
        position = [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]
    decay = [0.5 ** ((at - t.occur_time) / timedelta(days=7)) for t in touches]
    return {
        "first_touch": [1.0] + [0.0] * (n - 1),
        "linear": [1.0 / n] * n,
        "position_based": position,
        "time_decay": [d / sum(decay) for d in decay],
    }


def message_credits(
    rules: JourneyRules,
    version: int,
    enrollments: list[Enrollment],
    touchpoints: list[Touchpoint],
    awards: dict[tuple[str, str], ModelAward],
    start: datetime,
    end: datetime,
) -> dict[str, dict[str, tuple[float, dict[str, float]]]]:
    """Per message and model, the goal conversions in the range it is credited with, and their
    value per currency: last touch to the credited touchpoint's message, the split models
    across the journey's qualifying touchpoints in [T - window, T] in (time, event id) order."""
    by_id = {e.enrollment_id: e for e in enrollments}
    messages = {t.event_id: t.message_id for t in touchpoints}
    credits: dict[str, dict[str, tuple[float, dict[str, float]]]] = {}

    def add(message: str, model: str, share: float, award: ModelAward) -> None:
        conversions, value = credits.setdefault(message, {}).get(model, (0.0, {}))
        if award.value is not None:
            currency = award.value.currency_code
            value = {
                **value,
                currency: value.get(currency, 0.0) + share * award.value.amount_micros,
            }
        credits[message][model] = (conversions + share, value)

    for (enrollment_id, conversion_id), award in awards.items():
        e = by_id[enrollment_id]
        if conversion_id != GOAL_CONVERSION or e.journey_id != rules.journey_id:
            continue
        if (version and e.version != version) or not start <= award.award_time < end:
            continue
        add(messages[award.touchpoint_event_id], "last_touch", 1.0, award)
        touches = sorted(
            (
                t
                for t in touchpoints
                if t.contact_id == e.contact_id and touchpoint_qualifies(rules, t, award.award_time)
            ),
            key=lambda t: (t.occur_time, t.event_id),
        )
        for model, shares in _split(touches, award.award_time).items():
            for t, share in zip(touches, shares, strict=True):
                add(t.message_id, model, share, award)
    return credits


@dataclass(frozen=True)
class ModelSegment:
    key: str
    reached: int
    converted: int
    goal_conversions: int
    named: dict[str, int]


def segments(
    rules: JourneyRules,
    versions: list[int],
    layout: Callable[[int, str], tuple[str, str]],
    message_ids: list[str],
    enrollments: list[Enrollment],
    touchpoints: list[Touchpoint],
    awards: dict[tuple[str, str], ModelAward],
    start: datetime,
    end: datetime,
) -> tuple[list[ModelSegment], list[ModelSegment]]:
    """Steps and paths for the cohort (treated enrollments of the versions that entered in the
    range): `layout(version, message)` is a message's (step, path) in a version, '' for none;
    every step and path of the journey's messages in the versions is listed."""
    cohort = [
        e
        for e in enrollments
        if e.journey_id == rules.journey_id
        and e.version in versions
        and not e.holdout
        and start <= e.enter_time < end
    ]
    messages = {t.event_id: t.message_id for t in touchpoints}
    result = []
    for position in (0, 1):  # step, path
        keys = {layout(v, m)[position] for v in versions for m in message_ids} - {""}
        figures: dict[str, dict[str, Any]] = {}

        def of(key: str, figures: dict[str, dict[str, Any]] = figures) -> dict[str, Any]:
            return figures.setdefault(
                key, {"reached": 0, "converted": 0, "goal_conversions": 0, "named": {}}
            )

        for key in keys:
            of(key)
        for e in cohort:
            goal = awards.get((e.enrollment_id, GOAL_CONVERSION))
            converted = goal is not None and goal.award_time < end
            reached = {
                layout(e.version, t.message_id)[position]
                for t in touchpoints
                if t.contact_id == e.contact_id
                and t.journey_id == e.journey_id
                and _during(e, t.occur_time, end)
            } - {""}
            for key in reached:
                of(key)["reached"] += 1
                of(key)["converted"] += converted
            if converted and goal is not None:
                key = layout(e.version, messages[goal.touchpoint_event_id])[position]
                if key:
                    of(key)["goal_conversions"] += 1
            for (enrollment_id, conversion_id), award in awards.items():
                if (
                    position == 0
                    and enrollment_id == e.enrollment_id
                    and conversion_id != GOAL_CONVERSION
                    and award.step_id
                    and award.award_time < end
                ):
                    named = of(award.step_id)["named"]
                    named[conversion_id] = named.get(conversion_id, 0) + 1
        result.append(
            [
                ModelSegment(k, f["reached"], f["converted"], f["goal_conversions"], f["named"])
                for k, f in sorted(figures.items())
            ]
        )
    return result[0], result[1]


def participation(
    rules: JourneyRules,
    version: int,
    enrollments: list[Enrollment],
    touchpoints: list[Touchpoint],
    start: datetime,
    end: datetime,
) -> tuple[int, int, int, int]:
    """Treated enrollments of the journey (and version) that entered, were active, exited in the
    range, and were engaged: active, with a qualifying touchpoint in the range while enrolled."""
    own = [
        e
        for e in enrollments
        if e.journey_id == rules.journey_id
        and not e.holdout
        and (not version or e.version == version)
    ]
    active = [
        e for e in own if e.enter_time < end and (e.exit_time is None or e.exit_time >= start)
    ]
    engaged = [
        e
        for e in active
        if any(
            t.contact_id == e.contact_id
            and t.journey_id == e.journey_id
            and start <= t.occur_time < end
            and _during(e, t.occur_time, end)
            and not (
                rules.exclude_machine_opens and t.machine_generated and t.action == Action.OPENED
            )
            for t in touchpoints
        )
    ]
    return (
        sum(start <= e.enter_time < end for e in own),
        len(active),
        sum(e.exit_time is not None and start <= e.exit_time < end for e in own),
        len(engaged),
    )
