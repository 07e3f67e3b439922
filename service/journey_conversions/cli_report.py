"""`journey-conversions report`: one journey's report from a running server, as text or JSON."""

# The `timeout` values are gRPC deadlines handed to the client, not asyncio timeouts.
# ruff: noqa: ASYNC109

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from google.protobuf import json_format, timestamp_pb2
from journeys.conversions.v1 import report_pb2
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import report_text
from journey_conversions_client import (
    DEFAULT_TIMEOUT,
    JourneyConversionsClient,
    JourneyConversionsError,
    TlsSettings,
)

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TENANT = "default"
TARGET_ENV = "JC_TARGET"
TENANT_ENV = "JC_TENANT"
API_KEY_ENV = "JC_API_KEY"
TLS_CA_ENV = "JC_TLS_CA"
INT32_MAX = 2**31 - 1
EXIT_INTERRUPTED = 130

_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)([wdhms])", re.IGNORECASE)
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_TIME_HELP = (
    "an ISO 8601 date or date-time (2026-11-01, 2026-11-01T12:00:00Z, 2026-11-01T12:00+02:00; "
    "a bare date or a time without offset is read in --tz) or a span before now (7d, 24h, 30m, 2w)"
)


@dataclass(frozen=True, slots=True)
class TimeArg:
    """A --since or --until value as typed, before --tz and the current time give it a moment."""

    text: str
    moment: datetime | None = None  # aware, or naive: read in --tz
    before_now: timedelta | None = None

    def resolve(self, zone: tzinfo, now: datetime) -> datetime:
        """The moment meant, with a time zone."""
        if self.before_now is not None:
            return now - self.before_now
        assert self.moment is not None
        return self.moment if self.moment.tzinfo else self.moment.replace(tzinfo=zone)


def time_arg(text: str) -> TimeArg:
    """Parses a --since / --until value (argparse type)."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    try:
        if relative:
            amount, unit = relative.groups()
            span = timedelta(**{_UNITS[unit.lower()]: float(amount)})
            return TimeArg(text, before_now=span)
        return TimeArg(text, moment=datetime.fromisoformat(value))
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (expected an ISO 8601 date or date-time such as 2026-11-01 "
            "or 2026-11-01T12:00:00Z, or a span before now such as 7d or 24h)"
        ) from None


def zone_arg(text: str) -> str:
    """Checks an IANA time zone name (argparse type)."""
    if text:
        try:
            ZoneInfo(text)
        except (ZoneInfoNotFoundError, ValueError):
            raise argparse.ArgumentTypeError(
                f"unknown time zone {text!r}; expected an IANA name such as Europe/Paris"
            ) from None
    return text


def version_arg(text: str) -> int:
    """A version number, 0 or more (argparse type)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= number <= INT32_MAX:
        raise argparse.ArgumentTypeError(f"must be between 0 and {INT32_MAX}, not {number}")
    return number


def seconds_arg(text: str) -> float:
    """A positive number of seconds (argparse type)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, not {text}")
    return seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The report subcommand's arguments."""
    parser.add_argument("journey_id", metavar="JOURNEY_ID", help="the journey to report on")
    parser.add_argument(
        "--version", type=version_arg, default=0, metavar="N", help="one version; 0: all (default)"
    )
    parser.add_argument(
        "--baseline",
        type=version_arg,
        default=0,
        metavar="N",
        help="the version the others are compared with; 0: the lowest with entries (default)",
    )
    parser.add_argument(
        "--since",
        type=time_arg,
        metavar="TIME",
        help=f"start of the range, inclusive: {_TIME_HELP}",
    )
    parser.add_argument(
        "--until",
        type=time_arg,
        metavar="TIME",
        help="end of the range, exclusive, in the same forms (default: now)",
    )
    parser.add_argument(
        "--tz",
        type=zone_arg,
        default="",
        metavar="ZONE",
        help="IANA time zone of the days and of times without offset (default: UTC)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--target",
        metavar="HOST:PORT",
        help=f"the server (${TARGET_ENV}, default {DEFAULT_TARGET})",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"the API key; the server takes the tenant from it (${API_KEY_ENV})",
    )
    parser.add_argument(
        "--tls-ca",
        metavar="PEM",
        help=f"TLS, verifying the server with this CA file (${TLS_CA_ENV})",
    )
    parser.add_argument(
        "--tenant",
        metavar="T",
        help=f"development mode only: the tenant (${TENANT_ENV}, default {DEFAULT_TENANT!r})",
    )
    parser.add_argument(
        "--timeout",
        type=seconds_arg,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"deadline of the call, retries included (default {DEFAULT_TIMEOUT:g})",
    )


def _timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value.astimezone(UTC))
    return result


def build_request(
    args: argparse.Namespace, parser: argparse.ArgumentParser, now: datetime
) -> pb.GetJourneyReportRequest:
    """The request the arguments describe; a range that makes no sense exits through
    ``parser.error`` before anything is sent."""
    zone = ZoneInfo(args.tz) if args.tz else UTC
    request = pb.GetJourneyReportRequest(
        journey_id=args.journey_id,
        version=args.version,
        baseline_version=args.baseline,
        time_zone=args.tz,
    )
    moments: dict[str, datetime] = {}
    for name in ("since", "until"):
        value: TimeArg | None = getattr(args, name)
        if value is None:
            continue
        try:
            moments[name] = value.resolve(zone, now)
            field = request.start_time if name == "since" else request.end_time
            field.CopyFrom(_timestamp(moments[name]))
        except (OverflowError, ValueError):
            parser.error(f"argument --{name}: {value.text!r} is out of range")
    if "since" in moments and "until" in moments and moments["until"] <= moments["since"]:
        parser.error("argument --until: must be after --since")
    return request


async def fetch(
    target: str,
    credentials: Credentials,
    timeout: float,
    request: pb.GetJourneyReportRequest,
) -> report_pb2.JourneyReport:
    """Asks the server for the report."""
    async with JourneyConversionsClient(
        target,
        api_key=credentials.api_key,
        tls=TlsSettings(ca_file=credentials.tls_ca) if credentials.tls_ca else None,
        tenant_id=None if credentials.api_key else credentials.tenant or None,
        timeout=timeout,
    ) as c:
        return (await c.get_journey_report(request)).report


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str | None
    tls_ca: str | None
    tenant: str  # development mode, when there is no key


def credentials(args: argparse.Namespace) -> Credentials:
    """Flags win over the environment."""
    return Credentials(
        api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        tls_ca=args.tls_ca or os.environ.get(TLS_CA_ENV) or None,
        tenant=args.tenant
        if args.tenant is not None
        else os.environ.get(TENANT_ENV, DEFAULT_TENANT),
    )


def error_text(error: JourneyConversionsError) -> str:
    """A failed call as "error: CODE: message", then one line per wrong field."""
    lines = [f"error: {error.code.name}: {error.message}"]
    lines.extend(f"  {v.field}: {v.description}" for v in error.field_violations)
    return "\n".join(lines)


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Runs `report`: 0 when printed, 1 when the call failed, 130 on Ctrl-C."""
    request = build_request(args, parser, datetime.now(UTC))
    target = args.target or os.environ.get(TARGET_ENV) or DEFAULT_TARGET
    try:
        report = asyncio.run(fetch(target, credentials(args), args.timeout, request))
        print(
            json_format.MessageToJson(report, always_print_fields_with_no_presence=True)
            if args.json
            else report_text.render(report)
        )
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except JourneyConversionsError as error:
        print(error_text(error), file=sys.stderr)
        return 1
    return 0
