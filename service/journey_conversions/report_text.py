"""A journey report as plain-text tables for people at a terminal."""

# Intervals read "[10.1–14.8]" with an en dash, as in print, so that "[-3.0–-1.2]" stays legible.
# ruff: noqa: RUF001, RUF002, RUF003

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.protobuf import duration_pb2, timestamp_pb2
from journeys.conversions.v1 import journey_pb2, report_pb2

DASH = "–"
"""What a figure that is unknown or does not apply prints as."""
SPARK = "▁▂▃▄▅▆▇█"
MAX_DAY_ROWS = 14
"""Beyond this many days the per-day section is a sparkline instead of a table."""
INDENT = "  "

MODELS: tuple[tuple[report_pb2.CreditModel.ValueType, str], ...] = (
    (report_pb2.CREDIT_MODEL_LAST_TOUCH, "Last"),
    (report_pb2.CREDIT_MODEL_FIRST_TOUCH, "First"),
    (report_pb2.CREDIT_MODEL_LINEAR, "Linear"),
    (report_pb2.CREDIT_MODEL_POSITION_BASED, "Position"),
    (report_pb2.CREDIT_MODEL_TIME_DECAY, "Decay"),
)

Money = journey_pb2.Money | report_pb2.FractionalMoney


# -- small helpers ------------------------------------------------------------------------------


def _fixed(value: float, digits: int) -> str:
    """``value`` with ``digits`` decimals, never "-0.0"."""
    text = f"{value:.{digits}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def count(value: int) -> str:
    """An integer with thousands separators."""
    return f"{value:,}"


def percent(rate: float, digits: int = 1) -> str:
    """A proportion as a percentage: 0.1234 is "12.3%"."""
    if not math.isfinite(rate):
        return DASH
    return f"{_fixed(rate * 100, digits)}%"


def signed_percent(ratio: float) -> str:
    """A relative change as a signed percentage: 0.182 is "+18.2%"."""
    if not math.isfinite(ratio):
        return DASH
    text = _fixed(ratio * 100, 1)
    return f"{text}%" if text.startswith("-") or float(text) == 0 else f"+{text}%"


def interval(lower: float, upper: float) -> str:
    """A 95% interval of proportions in percentage points: "[10.1–14.8]"."""
    if not (math.isfinite(lower) and math.isfinite(upper)):
        return ""
    return f"[{_fixed(lower * 100, 1)}–{_fixed(upper * 100, 1)}]"


def rate_estimate(estimate: report_pb2.RateEstimate) -> str:
    """A rate and its interval, "12.3% [10.1–14.8]"; a dash without trials (nothing is known)."""
    if estimate.trials <= 0:
        return DASH
    return f"{percent(estimate.rate)} {interval(estimate.lower, estimate.upper)}".rstrip()


def points(difference: float) -> str:
    """A difference of proportions in signed percentage points: 0.021 is "+2.1 pts"."""
    if not math.isfinite(difference):
        return DASH
    text = _fixed(difference * 100, 1)
    sign = "" if text.startswith("-") or float(text) == 0 else "+"
    return f"{sign}{text} pts"


def p_value(value: float) -> str:
    """A p-value as "p=0.12", "p=0.004" or "p<0.001"."""
    if not math.isfinite(value):
        return ""
    if value < 0.001:
        return "p<0.001"
    return f"p={value:.3f}" if value < 0.01 else f"p={value:.2f}"


def rate_difference(difference: report_pb2.RateDifference) -> str:
    """A difference with its interval and p-value: "+2.1 pts [-0.5–4.7] p=0.12"."""
    parts = (
        points(difference.difference),
        interval(difference.lower, difference.upper),
        p_value(difference.p_value),
    )
    return " ".join(part for part in parts if part)


def relative(difference: report_pb2.RateDifference) -> str:
    """The relative difference, or a dash when it is unset (a zero baseline rate)."""
    if not difference.HasField("relative_difference"):
        return DASH
    return signed_percent(difference.relative_difference)


def money(currency_code: str, amount_micros: float) -> str:
    """An amount in micros as "1,234.50 EUR"."""
    if not math.isfinite(amount_micros):
        return DASH
    amount = _fixed(amount_micros / 1e6, 2)
    whole, _, cents = amount.partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}.{cents} {currency_code}".rstrip()


def money_list(values: Iterable[Money]) -> str:
    """Amounts per currency, "12.00 EUR, 3.50 USD"; a dash for none."""
    texts = [money(v.currency_code, float(v.amount_micros)) for v in values]
    return ", ".join(texts) if texts else DASH


def duration(seconds: float) -> str:
    """A span as its two largest units, rounded: "2d 4h", "35m", "1h 5m", "45s"."""
    if not math.isfinite(seconds):
        return DASH
    if seconds < 0:
        return f"-{duration(-seconds)}"
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return "<1s"
    for big, big_name, small, small_name in (
        (86_400, "d", 3_600, "h"),
        (3_600, "h", 60, "m"),
        (60, "m", 1, "s"),
    ):
        rounded = round(seconds / small) * small
        if rounded >= big:
            whole, rest = divmod(rounded, big)
            return f"{whole}{big_name}" + (f" {rest // small}{small_name}" if rest else "")
    return f"{round(seconds)}s"


def proto_duration(value: duration_pb2.Duration) -> str:
    """A protobuf Duration as ``duration`` text."""
    return duration(value.seconds + value.nanos / 1e9)


def sparkline(values: Sequence[int]) -> str:
    """One block per value, scaled to the largest: zero is always the lowest block and any
    other value at least the second, so a quiet day never looks like an empty one."""
    top = max(values, default=0)
    if top <= 0:
        return SPARK[0] * len(values)
    return "".join(
        SPARK[0] if v <= 0 else SPARK[1 + round(v / top * (len(SPARK) - 2))] for v in values
    )


def table(rows: Sequence[Sequence[str]], align: str = "", indent: str = INDENT) -> list[str]:
    """Rows of cells as lines with aligned columns; ``align`` has an "l" or "r" per column
    (left when missing). The first row is usually the header."""
    if not rows:
        return []
    width = max(len(row) for row in rows)
    sizes = [max((len(row[i]) for row in rows if i < len(row)), default=0) for i in range(width)]
    lines = []
    for row in rows:
        cells = []
        for i, size in enumerate(sizes):
            cell = row[i] if i < len(row) else ""
            right = i < len(align) and align[i] == "r"
            cells.append(cell.rjust(size) if right else cell.ljust(size))
        lines.append((indent + "  ".join(cells)).rstrip())
    return lines


def _zone(name: str) -> tzinfo:
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def _time(value: timestamp_pb2.Timestamp, zone: tzinfo) -> str:
    moment = datetime.fromtimestamp(value.seconds, UTC).astimezone(zone)
    return moment.strftime("%Y-%m-%d %H:%M" if moment.second == 0 else "%Y-%m-%d %H:%M:%S")


def _enum_name(value: int, names: dict[int, str]) -> str:
    return names.get(value, str(value))


_CHANNELS: dict[int, str] = {
    number: name.removeprefix("CHANNEL_").lower() for name, number in journey_pb2.Channel.items()
}


# -- sections -----------------------------------------------------------------------------------


def _header(report: report_pb2.JourneyReport) -> list[str]:
    zone_name = report.time_zone or "UTC"
    zone = _zone(report.time_zone)
    if report.version:
        shown = f"version {report.version}"
    else:
        listed = ", ".join(str(v.version) for v in report.versions)
        shown = f"all ({listed})" if listed else "all"
    # The server reports an unset start as the epoch: say so rather than print 1970.
    epoch = report.start_time.seconds == 0 and report.start_time.nanos == 0
    start = "the beginning" if epoch else _time(report.start_time, zone)
    end = _time(report.end_time, zone) if report.HasField("end_time") else "now"
    if report.baseline_version:
        baseline = f"version {report.baseline_version}"
    else:
        baseline = "none (no version has treated entries in the range)"
    rows = [
        ["Versions", shown],
        ["Range", f"{start} → {end} (end excluded)"],
        ["Time zone", zone_name],
        ["Baseline", baseline],
    ]
    return [f"Journey {report.journey_id}", *table(rows)]


def _summary(report: report_pb2.JourneyReport) -> list[str]:
    rates = []
    if report.entered:
        rates.append(f"{percent(report.conversion_rate_entered)} of entered")
    if report.engaged:
        rates.append(f"{percent(report.conversion_rate_engaged)} of engaged")
    conversions = count(report.goal_conversions)
    rows = [
        ["Entered", count(report.entered), ""],
        ["Active", count(report.active), ""],
        ["Exited", count(report.exited), ""],
        ["Engaged", count(report.engaged), ""],
        ["Goal conversions", conversions, f"({', '.join(rates)})" if rates else ""],
        ["Repeat goal events", count(report.repeat_goal_events), ""],
    ]
    # One currency a row, right-aligned, so that the amounts line up on their decimal points.
    amounts = [money(v.currency_code, v.amount_micros) for v in report.value] or [DASH]
    rows.append(["Value", amounts[0], ""])
    rows.extend(["", amount, ""] for amount in amounts[1:])
    timing = report.time_to_conversion
    if timing.HasField("median_from_entry"):
        detail = (
            f"(median from entry, p90 {_span(timing, 'p90_from_entry')}; from the credited "
            f"touchpoint: median {_span(timing, 'median_from_last_touch')}, "
            f"p90 {_span(timing, 'p90_from_last_touch')})"
        )
        rows.append(["Time to conversion", _span(timing, "median_from_entry"), detail])
    elsewhere = count(report.goal_events_credited_elsewhere)
    top = ", ".join(f"{j.journey_id} {count(j.count)}" for j in report.credited_elsewhere)
    rows.append(["Credited elsewhere", elsewhere, f"({top})" if top else ""])
    return ["Summary", *table(rows, "lrl")]


def _span(
    timing: report_pb2.TimeToConversion,
    which: Literal[
        "median_from_entry", "p90_from_entry", "median_from_last_touch", "p90_from_last_touch"
    ],
) -> str:
    """One percentile of a time to conversion, or a dash when unset (no conversions)."""
    return proto_duration(getattr(timing, which)) if timing.HasField(which) else DASH


def _marked(difference: report_pb2.RateDifference, has_difference: bool) -> bool:
    return has_difference and not difference.sufficient_data


def _note(difference: report_pb2.RateDifference) -> str:
    return difference.note or "too little data for the interval and p-value to mean much"


def _versions(report: report_pb2.JourneyReport) -> list[str]:
    if not report.versions:
        return []
    rows = [
        [
            "Version",
            "Entered",
            "Engaged",
            "Conversions",
            "Rate of entered",
            "Rate of engaged",
            "vs baseline",
            "Median",
            "p90",
        ]
    ]
    notes = []
    for v in report.versions:
        has_difference = v.HasField("difference_from_baseline")
        marked = _marked(v.difference_from_baseline, has_difference)
        if has_difference:
            versus = rate_difference(v.difference_from_baseline)
        elif v.version == report.baseline_version:
            versus = "baseline"
        else:
            versus = DASH
        if marked:
            notes.append(f"* version {v.version}: {_note(v.difference_from_baseline)}")
        timing = v.time_to_conversion
        rows.append(
            [
                f"{v.version}{'*' if marked else ''}",
                count(v.entered),
                count(v.engaged),
                count(v.goal_conversions),
                rate_estimate(v.conversion_rate_entered),
                rate_estimate(v.conversion_rate_engaged),
                versus,
                _span(timing, "median_from_entry"),
                _span(timing, "p90_from_entry"),
            ]
        )
    heading = "Versions (95% intervals; time to conversion from entry)"
    return [heading, *table(rows, "lrrrlllrr"), *(INDENT + note for note in notes)]


def _has_holdout(report: report_pb2.JourneyReport) -> bool:
    return report.holdout.holdout.trials > 0 or any(
        v.holdout.holdout.trials > 0 for v in report.versions
    )


def _holdout(report: report_pb2.JourneyReport) -> list[str]:
    if not _has_holdout(report):
        return []
    rows = [["Version", "Treated", "Goal met", "Holdout", "Goal met", "Lift", "Relative"]]
    notes = []
    lifts = [(str(v.version), f"version {v.version}", v.holdout) for v in report.versions]
    lifts.append(("all", "all versions", report.holdout))
    for label, name, lift in lifts:
        has_lift = lift.HasField("lift")
        marked = _marked(lift.lift, has_lift)
        if marked:
            notes.append(f"* {name}: {_note(lift.lift)}")
        rows.append(
            [
                f"{label}{'*' if marked else ''}",
                count(lift.treated.trials),
                rate_estimate(lift.treated),
                count(lift.holdout.trials),
                rate_estimate(lift.holdout),
                rate_difference(lift.lift) if has_lift else DASH,
                relative(lift.lift) if has_lift else DASH,
            ]
        )
    heading = "Holdout lift (goal met, treated against holdout)"
    return [heading, *table(rows, "lrlrllr"), *(INDENT + note for note in notes)]


def _segments(
    title: str, segments: Sequence[report_pb2.SegmentReport], names: dict[str, str]
) -> list[str]:
    if not segments:
        return []
    rows = [[title, "Reached", "Conversions", "Rate of reached", "Named conversions"]]
    for s in segments:
        named = ", ".join(
            f"{names.get(c.conversion_id) or c.conversion_id} {count(c.count)}"
            for c in s.named_conversions
        )
        rows.append(
            [
                s.key or DASH,
                count(s.reached),
                count(s.goal_conversions),
                rate_estimate(s.conversion_rate_reached),
                named or DASH,
            ]
        )
    return [f"{title}s", *table(rows, "lrrll")]


def _messages(report: report_pb2.JourneyReport) -> list[str]:
    if not report.messages:
        return []
    by_model = any(m.credits for m in report.messages)
    if by_model:
        header = ["Message", "Channel", "Touchpoints", *(name for _, name in MODELS)]
    else:
        header = ["Message", "Channel", "Touchpoints", "Credited"]
    rows = [header]
    for m in report.messages:
        row = [
            m.message_id,
            _enum_name(m.channel, _CHANNELS),
            count(sum(c.count for c in m.touchpoints)),
        ]
        if by_model:
            credits = {c.model: c.conversions for c in m.credits}
            row.extend(
                _fixed(credits[model], 2)
                if model in credits and math.isfinite(credits[model])
                else DASH
                for model, _ in MODELS
            )
        else:
            row.append(count(m.credited_conversions))
        rows.append(row)
    if by_model:
        heading = "Messages (goal conversions credited by each model)"
    else:
        heading = "Messages (goal conversions credited, last touch)"
    return [heading, *table(rows, "llr" + "r" * len(MODELS))]


def _days(report: report_pb2.JourneyReport) -> list[str]:
    days = report.days
    if not days:
        return []
    goals = sum(d.goal_conversions for d in days)
    named = sum(d.named_conversions for d in days)
    totals: dict[str, int] = {}
    for d in days:
        for v in d.value:
            totals[v.currency_code] = totals.get(v.currency_code, 0) + v.amount_micros
    value = money_list(
        journey_pb2.Money(currency_code=code, amount_micros=micros)
        for code, micros in totals.items()
    )
    zone = report.time_zone or "UTC"
    if len(days) <= MAX_DAY_ROWS:
        rows = [["Date", "Goal conversions", "Named conversions", "Value"]]
        rows.extend(
            [d.date, count(d.goal_conversions), count(d.named_conversions), money_list(d.value)]
            for d in days
        )
        rows.append(["Total", count(goals), count(named), value])
        if not totals:
            rows = [row[:3] for row in rows]
        return [f"Per day ({zone})", *table(rows, "lrrl")]
    daily = [d.goal_conversions for d in days]
    top = max(daily)
    busiest = days[daily.index(top)].date
    line = f"{days[0].date} {sparkline(daily)} {days[-1].date}"
    peak = f"max {count(top)} on {busiest}" if top > 0 else "none"
    rows = [
        ["Goal conversions", line, peak],
        ["Total", f"{count(goals)} goal conversions, {count(named)} named conversions", ""],
    ]
    if totals:
        rows.append(["Value", value, ""])
    return [f"Per day ({zone}, {len(days)} days)", *table(rows)]


def _named(report: report_pb2.JourneyReport) -> list[str]:
    if not report.named_conversions:
        return []
    rows = [["Conversion", "Name", "Count", "Value"]]
    rows.extend(
        [n.conversion_id, n.name or DASH, count(n.count), money_list(n.value)]
        for n in report.named_conversions
    )
    return ["Named conversions", *table(rows, "llrl")]


def render(report: report_pb2.JourneyReport) -> str:
    """The whole report, section after section, each skipped when it has nothing to show."""
    names = {n.conversion_id: n.name for n in report.named_conversions}
    sections = [
        _header(report),
        _summary(report),
        _versions(report),
        _holdout(report),
        _segments("Step", report.steps, names),
        _segments("Path", report.paths, names),
        _messages(report),
        _days(report),
        _named(report),
    ]
    return "\n\n".join("\n".join(lines) for lines in sections if lines)
