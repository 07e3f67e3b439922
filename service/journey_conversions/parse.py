"""Protobuf requests to domain values, checking every field on the way in.

Each parser collects every violation of its message (with the field's path) before failing, so
a caller sees all that is wrong at once.
"""

from __future__ import annotations

import enum
import functools
import re
import zoneinfo
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Protocol, TypeVar, cast

from google.protobuf import duration_pb2, timestamp_pb2
from journeys.conversions.v1 import conversions_pb2, events_pb2, journey_pb2

from journey_conversions import domain
from journey_conversions.errors import InvalidArgument, Violation

MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 2048
MAX_LIST_LENGTH = 1000
MAX_BATCH = 1000
# The range google.protobuf.Timestamp allows: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_MIN_SECONDS = -62_135_596_800
_MAX_SECONDS = 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_WINDOW = timedelta(minutes=1)
MAX_WINDOW = timedelta(days=365)
# How far after now a report's range may end: nothing can have happened there, and every day
# up to the end is a row of the report (an end in year 9999 made millions of them, computed
# for seconds on the event loop, and overflowed the date type in zones east of UTC).
MAX_REPORT_AHEAD = timedelta(days=366)
# fullmatch, not match with "$": "$" also matches before a trailing newline ("EUR\n").
_CURRENCY = re.compile(r"[A-Z]{3}")
_E = TypeVar("_E", bound=enum.IntEnum)
# Surrounding whitespace or any control character (ids are compared byte for byte).
_BAD_IDENTIFIER = re.compile(r"^\s|\s$|[\x00-\x1f\x7f]")
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")  # fullmatch (see _CURRENCY)


class TimeBounds(Protocol):
    """The window of occur times the service accepts: allowed lateness and clock skew."""

    @property
    def earliest(self) -> datetime: ...
    @property
    def latest(self) -> datetime: ...


class Checker:
    """Collects violations under a path prefix, for one message."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix
        self.violations: list[Violation] = []

    def path(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def fail(self, name: str, description: str) -> None:
        self.violations.append(Violation(self.path(name), description))

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)

    def identifier(self, name: str, value: str, *, required: bool = True) -> str:
        # The common case first, without the regex: printable (so no control character) and
        # no space at either end.
        if (
            value
            and len(value) <= MAX_ID_LENGTH
            and value.isprintable()
            and not value[0].isspace()
            and not value[-1].isspace()
        ):
            return value
        if not value:
            if required:
                self.fail(name, "is required")
        elif len(value) > MAX_ID_LENGTH:
            self.fail(name, f"must be at most {MAX_ID_LENGTH} characters")
        elif _BAD_IDENTIFIER.search(value):
            self.fail(name, "must not have surrounding spaces or control characters")
        return value

    def text(self, name: str, value: str, *, required: bool = False) -> str:
        if not value and required:
            self.fail(name, "is required")
        elif len(value) > MAX_TEXT_LENGTH:
            self.fail(name, f"must be at most {MAX_TEXT_LENGTH} characters")
        elif "\x00" in value:
            self.fail(name, "must not contain NUL characters")  # Postgres text cannot hold them
        return value

    def identifiers(self, name: str, values: Iterable[str]) -> frozenset[str]:
        items = list(values)
        if len(items) > MAX_LIST_LENGTH:
            self.fail(name, f"must have at most {MAX_LIST_LENGTH} items")
            return frozenset()
        for index, value in enumerate(items):
            self.identifier(f"{name}[{index}]", value)
        return frozenset(items)

    def enum(self, name: str, kind: type[_E], value: int) -> _E | None:
        if value == 0:
            self.fail(name, "is required")
            return None
        # A dict lookup: calling the enum class is slow on the per-item ingest path.
        member = kind._value2member_map_.get(value)
        if member is None:
            self.fail(name, f"unknown value {value}")
            return None
        return cast(_E, member)

    def timestamp(
        self,
        name: str,
        holder: object,
        bounds: TimeBounds | None,
        *,
        required: bool = True,
    ) -> datetime | None:
        if not _has(holder, name):
            if required:
                self.fail(name, "is required")
            return None
        value: timestamp_pb2.Timestamp = getattr(holder, name)
        if not 0 <= value.nanos < 1_000_000_000:
            self.fail(name, "nanos must be in [0, 1e9)")
            return None
        if not _MIN_SECONDS <= value.seconds <= _MAX_SECONDS:
            self.fail(name, "must lie between 0001-01-01 and 9999-12-31")
            return None
        when = to_datetime(value)
        if bounds is not None:
            if when < bounds.earliest:
                self.fail(
                    name,
                    f"is older than the allowed lateness ({bounds.earliest:%Y-%m-%dT%H:%M:%SZ})",
                )
            elif when > bounds.latest:
                self.fail(name, "is in the future beyond the allowed clock skew")
        return when

    def money(self, name: str, holder: object) -> domain.Money | None:
        if not _has(holder, name):
            return None
        value: journey_pb2.Money = getattr(holder, name)
        if not _CURRENCY.fullmatch(value.currency_code):
            self.fail(f"{name}.currency_code", "must be three upper-case letters (ISO 4217)")
            return None
        return domain.Money(value.currency_code, value.amount_micros)

    def batch_size(self, name: str, count: int) -> None:
        if count == 0:
            self.fail(name, "must have at least one item")
        elif count > MAX_BATCH:
            self.fail(name, f"must have at most {MAX_BATCH} items")


def _has(holder: object, name: str) -> bool:
    has_field = getattr(holder, "HasField", None)
    return bool(has_field and has_field(name))


def to_datetime(value: timestamp_pb2.Timestamp) -> datetime:
    """Microsecond precision: what Postgres keeps, so a repeat compares equal to the stored one."""
    return _EPOCH + timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def tenant(value: str | None, default: str) -> str:
    if value is None or value == "":
        return default
    if not _TENANT.fullmatch(value):
        raise InvalidArgument(
            [Violation("x-tenant-id", "must be 1-64 letters, digits, '_', '.' or '-'")]
        )
    return value


@functools.cache
def _time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def time_zone(checker: Checker, name: str) -> zoneinfo.ZoneInfo:
    """An IANA time zone; UTC when empty. Only names of the time zone database are looked up:
    ZoneInfo reads the file a name points to, and a directory ("Europe") or a name too long
    for the file system raised OSError, which answered UNAVAILABLE ("the database is
    unavailable") with the server's path in the message."""
    if not name:
        return zoneinfo.ZoneInfo("UTC")
    if name in _time_zone_names():
        try:
            return zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass  # listed, but not readable as a zone
    checker.fail("time_zone", f"{name[:64]!r} is not an IANA time zone name")
    return zoneinfo.ZoneInfo("UTC")


def page_size(checker: Checker, value: int) -> int:
    if value < 0 or value > 500:
        checker.fail("page_size", "must be between 0 and 500")
    return value or 50


# --- journeys and criteria ------------------------------------------------------------------

_FILTER_FIELDS = (
    "attribute_name",
    "list_ids",
    "message_ids",
    "url_patterns",
    "form_ids",
    "product_ids",
)
_GOAL_EVENT_FIELDS = (
    "attribute_name",
    "attribute_value",
    "list_id",
    "message_id",
    "url",
    "form_id",
    "product_ids",
)
_ORDER_TYPES = (domain.GoalEventType.ORDER_PLACED, domain.GoalEventType.ORDER_UPDATED)


def _filters_for(kind: domain.GoalEventType) -> set[str]:
    if kind == domain.GoalEventType.CONTACT_UPDATED:
        return {"attribute_name"}
    if kind == domain.GoalEventType.CONTACT_ADDED_TO_LIST:
        return {"list_ids"}
    if kind in domain.MESSAGE_EVENT_CHANNEL:
        return {"message_ids"}
    if kind == domain.GoalEventType.WEBSITE_PAGE_VISITED:
        return {"url_patterns"}
    if kind == domain.GoalEventType.FORM_SUBMITTED:
        return {"form_ids"}
    return {"product_ids"}


def criterion(
    checker: Checker,
    value: journey_pb2.GoalCriterion,
    messages: dict[str, domain.Channel] | None,
) -> domain.Criterion | None:
    """A goal or trigger; message goals must name messages of the journey with the right channel
    (not checked when `messages` is None: the journey is not read yet)."""
    kind = checker.enum("event_type", domain.GoalEventType, value.event_type)
    if kind is None:
        return None
    allowed = _filters_for(kind)
    for name in _FILTER_FIELDS:
        present = bool(getattr(value, name))
        if present and name not in allowed:
            checker.fail(name, f"is not a filter of {kind.name}")
    if value.HasField("attribute_value") and kind != domain.GoalEventType.CONTACT_UPDATED:
        checker.fail("attribute_value", f"is not a filter of {kind.name}")
    required = allowed - {"product_ids"}
    for name in required:
        if not getattr(value, name):
            checker.fail(name, f"is required for {kind.name}")
    checker.identifier("attribute_name", value.attribute_name, required=False)
    checker.text("attribute_value", value.attribute_value)
    if kind in domain.MESSAGE_EVENT_CHANNEL and messages is not None:
        channel = domain.MESSAGE_EVENT_CHANNEL[kind]
        for index, message_id in enumerate(value.message_ids):
            found = messages.get(message_id)
            if found is None:
                checker.fail(
                    f"message_ids[{index}]", f"message {message_id!r} is not in this journey"
                )
            elif found != channel:
                checker.fail(
                    f"message_ids[{index}]",
                    f"message {message_id!r} is a {found.name} message, not {channel.name}",
                )
    # Bounded like the other filter lists (identifiers): unbounded, a 16 MiB request held
    # hundreds of thousands, echoed twice (goal and history) in a reply too large to send.
    if len(value.url_patterns) > MAX_LIST_LENGTH:
        checker.fail("url_patterns", f"must have at most {MAX_LIST_LENGTH} items")
    for index, pattern in enumerate(value.url_patterns[:MAX_LIST_LENGTH]):
        checker.text(f"url_patterns[{index}]", pattern, required=True)
        if "*" in pattern[:-1]:
            checker.fail(f"url_patterns[{index}]", "'*' is only allowed at the end (a prefix)")
    return domain.Criterion(
        event_type=kind,
        attribute_name=value.attribute_name,
        attribute_value=value.attribute_value if value.HasField("attribute_value") else None,
        list_ids=checker.identifiers("list_ids", value.list_ids),
        message_ids=checker.identifiers("message_ids", value.message_ids),
        url_patterns=tuple(value.url_patterns),
        form_ids=checker.identifiers("form_ids", value.form_ids),
        product_ids=checker.identifiers("product_ids", value.product_ids),
    )


def window(checker: Checker, holder: journey_pb2.Journey) -> timedelta:
    if not holder.HasField("attribution_window"):
        return domain.DEFAULT_ATTRIBUTION_WINDOW
    value: duration_pb2.Duration = holder.attribution_window
    # Bounds first: a huge Duration does not fit a timedelta.
    within = MIN_WINDOW.total_seconds() <= value.seconds <= MAX_WINDOW.total_seconds()
    if not within or not 0 <= value.nanos < 1_000_000_000:
        checker.fail("attribution_window", "must be between 1 minute and 365 days")
        return domain.DEFAULT_ATTRIBUTION_WINDOW
    return timedelta(seconds=value.seconds, microseconds=value.nanos // 1000)


def versions(
    checker: Checker, values: Iterable[journey_pb2.JourneyVersion]
) -> list[domain.JourneyVersion]:
    parsed: list[domain.JourneyVersion] = []
    seen: set[int] = set()
    values = list(values)
    # Bounded like every other list: a journey of 100,000 messages took seconds to define and
    # slowed every later touchpoint, report and read of the journey.
    if len(values) > MAX_LIST_LENGTH:
        checker.fail("versions", f"must have at most {MAX_LIST_LENGTH} items")
        return parsed
    for index, value in enumerate(values):
        path = f"versions[{index}]"
        if value.version < 1:
            checker.fail(f"{path}.version", "must be 1 or more")
        elif value.version in seen:
            checker.fail(f"{path}.version", f"version {value.version} is listed twice")
        seen.add(value.version)
        messages: list[domain.JourneyMessage] = []
        ids: set[str] = set()
        if len(value.messages) > MAX_LIST_LENGTH:
            checker.fail(f"{path}.messages", f"must have at most {MAX_LIST_LENGTH} items")
            continue
        for m_index, message in enumerate(value.messages):
            m_path = f"{path}.messages[{m_index}]"
            checker.identifier(f"{m_path}.message_id", message.message_id)
            if message.message_id in ids:
                checker.fail(f"{m_path}.message_id", "is listed twice in this version")
            ids.add(message.message_id)
            channel = checker.enum(f"{m_path}.channel", domain.Channel, message.channel)
            checker.identifier(f"{m_path}.step_id", message.step_id, required=False)
            # At most MAX_ID_LENGTH like the step id, not MAX_TEXT_LENGTH: a path is a key of
            # enrollment_reach's indexes, and a longer one (in multi-byte characters) exceeded
            # Postgres's index row size, failing the message's touchpoints with INTERNAL.
            if len(message.path) > MAX_ID_LENGTH:
                checker.fail(f"{m_path}.path", f"must be at most {MAX_ID_LENGTH} characters")
            else:
                checker.text(f"{m_path}.path", message.path)
            if channel is not None:
                messages.append(
                    domain.JourneyMessage(
                        message.message_id, channel, message.step_id, message.path
                    )
                )
        parsed.append(domain.JourneyVersion(value.version, tuple(messages)))
    return parsed


# --- events ---------------------------------------------------------------------------------


def enrollment(
    checker: Checker, value: events_pb2.Enrollment, bounds: TimeBounds
) -> domain.Enrollment | None:
    checker.identifier("enrollment_id", value.enrollment_id)
    checker.identifier("contact_id", value.contact_id)
    checker.identifier("journey_id", value.journey_id)
    if value.version < 1:
        checker.fail("version", "must be 1 or more")
    enter_time = checker.timestamp("enter_time", value, bounds)
    if checker.violations or enter_time is None:
        return None
    return domain.Enrollment(
        value.enrollment_id,
        value.contact_id,
        value.journey_id,
        value.version,
        enter_time,
        holdout=value.holdout,
    )


def touchpoint(
    checker: Checker, value: events_pb2.Touchpoint, bounds: TimeBounds
) -> domain.Touchpoint | None:
    checker.identifier("event_id", value.event_id)
    checker.identifier("contact_id", value.contact_id)
    checker.identifier("journey_id", value.journey_id)
    checker.identifier("message_id", value.message_id)
    if value.version < 0:
        checker.fail("version", "must be 0 (unknown) or more")
    channel = checker.enum("channel", domain.Channel, value.channel)
    action = checker.enum("action", domain.Action, value.action)
    if (
        channel is not None
        and action is not None
        and action not in domain.ACTIONS_BY_CHANNEL[channel]
    ):
        checker.fail("action", f"{action.name} is not an action of {channel.name}")
    if value.machine_generated and action is not None and action != domain.Action.OPENED:
        checker.fail("machine_generated", "only opens can be machine-generated")
    occur_time = checker.timestamp("occur_time", value, bounds)
    if checker.violations or channel is None or action is None or occur_time is None:
        return None
    return domain.Touchpoint(
        value.event_id,
        value.contact_id,
        value.journey_id,
        value.version,
        value.message_id,
        channel,
        action,
        occur_time,
        value.machine_generated,
    )


def goal_event(
    checker: Checker, value: events_pb2.GoalEvent, bounds: TimeBounds
) -> domain.GoalEvent | None:
    checker.identifier("event_id", value.event_id)
    checker.identifier("contact_id", value.contact_id)
    kind = checker.enum("event_type", domain.GoalEventType, value.event_type)
    occur_time = checker.timestamp("occur_time", value, bounds)
    value_money = checker.money("value", value)
    if kind is not None:
        fields = {
            domain.GoalEventType.CONTACT_UPDATED: {"attribute_name"},
            domain.GoalEventType.CONTACT_ADDED_TO_LIST: {"list_id"},
            domain.GoalEventType.WEBSITE_PAGE_VISITED: {"url"},
            domain.GoalEventType.FORM_SUBMITTED: {"form_id"},
        }.get(kind, {"message_id"} if kind in domain.MESSAGE_EVENT_CHANNEL else set())
        for name in fields:
            if not getattr(value, name):
                checker.fail(name, f"is required for {kind.name}")
        optional = {"attribute_value"} if kind == domain.GoalEventType.CONTACT_UPDATED else set()
        if kind in _ORDER_TYPES:
            optional = {"product_ids"}
        for name in _GOAL_EVENT_FIELDS:
            if getattr(value, name) and name not in fields | optional:
                checker.fail(name, f"is not a field of {kind.name}")
    checker.identifier("attribute_name", value.attribute_name, required=False)
    checker.text("attribute_value", value.attribute_value)
    checker.identifier("list_id", value.list_id, required=False)
    checker.identifier("message_id", value.message_id, required=False)
    checker.text("url", value.url)
    checker.identifier("form_id", value.form_id, required=False)
    products = checker.identifiers("product_ids", value.product_ids)
    checker.identifier("amends_event_id", value.amends_event_id, required=False)
    if value.amends_event_id and kind not in (None, domain.GoalEventType.ORDER_UPDATED):
        checker.fail("amends_event_id", "is a field of ORDER_UPDATED only")
    elif value.amends_event_id and value.amends_event_id == value.event_id:
        checker.fail("amends_event_id", "must name another goal event")
    if checker.violations or kind is None or occur_time is None:
        return None
    return domain.GoalEvent(
        event_id=value.event_id,
        contact_id=value.contact_id,
        event_type=kind,
        occur_time=occur_time,
        attribute_name=value.attribute_name,
        attribute_value=value.attribute_value,
        list_id=value.list_id,
        message_id=value.message_id,
        url=value.url,
        form_id=value.form_id,
        product_ids=products,
        value=value_money,
        amends_event_id=value.amends_event_id,
    )


def conversion_name_key(name: str) -> str:
    """Names compare case- and space-insensitively."""
    return "".join(name.casefold().split())


def conversion(
    checker: Checker,
    value: conversions_pb2.ConversionDefinition,
    messages: dict[str, domain.Channel] | None,
) -> tuple[str, domain.Money | None, domain.Criterion | None]:
    """The name, value and trigger of a conversion definition; a trigger's messages are checked
    against the journey's `messages` when given (see criterion)."""
    checker.identifier("conversion_id", value.conversion_id)
    checker.identifier("journey_id", value.journey_id)
    name = value.name
    if not conversion_name_key(name):
        checker.fail("name", "is required")
    elif len(name) > MAX_ID_LENGTH:
        checker.fail("name", f"must be at most {MAX_ID_LENGTH} characters")
    elif "\x00" in name:
        checker.fail("name", "must not contain NUL characters")
    money = checker.money("value", value)
    trigger = None
    if value.HasField("trigger"):
        nested = Checker(checker.path("trigger"))
        trigger = criterion(nested, value.trigger, messages)
        checker.violations.extend(nested.violations)
    return name.strip(), money, trigger
