"""Report benchmark: GetJourneyReport on a realistic tenant, against the naive report.

For each --touchpoints size: a fresh database, a tenant loaded by bench.tenant (the enrollments
and goal events stay the same, only the touchpoint history grows), and a real `journey-conversions
serve` process on it. For the journey with the most enrollments it times --calls GetJourneyReport
calls after a warm-up, in two variants (all versions and all time; the last 30 days with days in
Europe/Paris), and the naive baseline on the same database, journey and ranges: the five
aggregations over raw rows that the report ran before per-enrollment facts existed (the SQL of
store/reports.py at commit e70d698), run directly with asyncpg. It prints p50 and p99 in ms and
the database size, and drops the databases unless --keep; --database measures a kept one again
without loading.

    .venv/bin/python -m bench.report --database-url postgresql://postgres@127.0.0.1:5432/postgres \\
        --touchpoints 1000000 10000000 --calls 50
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
from journeys.conversions.v1 import service_pb2 as pb
from journeys.conversions.v1 import service_pb2_grpc

from bench.ingest import scratch_database
from bench.tenant import (
    TenantSpec,
    add_size_arguments,
    largest_journey,
    load_tenant,
    spec_from_arguments,
    tenant_counts,
)
from tests.builders import ts
from tests.processes import serve

DAWN = datetime(1970, 1, 1, tzinfo=UTC)  # where the service starts an unbounded range
CALL_TIMEOUT = 600.0

# The report's SQL at commit e70d698, before per-enrollment facts: $1 tenant, $2 journey,
# $3 version (0: all), [$4, $5) the range, $6 whether machine-generated opens are excluded.
NAIVE_ENROLLMENT_FIGURES = """
select
  count(*) filter (where enter_time >= $4 and enter_time < $5) as entered,
  count(*) filter (where enter_time < $5 and (exit_time is null or exit_time >= $4)) as active,
  count(*) filter (where exit_time >= $4 and exit_time < $5) as exited,
  count(*) filter (where enter_time < $5 and (exit_time is null or exit_time >= $4)
    and exists (
      select 1 from touchpoints t
      where t.tenant_id = $1 and t.contact_id = e.contact_id and t.journey_id = $2
        and t.occur_time >= greatest(e.enter_time, $4) and t.occur_time < $5
        and (e.exit_time is null or t.occur_time <= e.exit_time)
        and not (t.machine_generated and t.action = 2 and $6))) as engaged
from enrollments e
where tenant_id = $1 and journey_id = $2 and ($3 = 0 or version = $3)
"""

NAIVE_TOUCHPOINTS_BY_MESSAGE = """
select message_id, action, count(*) as n from touchpoints t
where tenant_id = $1 and journey_id = $2 and occur_time >= $4 and occur_time < $5
  and ($3 = 0 or version = $3 or (version = 0 and exists (
    select 1 from journey_messages m where m.tenant_id = $1 and m.journey_id = $2
      and m.version = $3 and m.message_id = t.message_id)))
group by message_id, action
"""

NAIVE_AWARDS = """
select conversion_id, message_id, value_currency, count(*) as n,
  coalesce(sum(value_micros), 0)::bigint as micros
from awards
where tenant_id = $1 and journey_id = $2 and ($3 = 0 or version = $3)
  and award_time >= $4 and award_time < $5
group by conversion_id, message_id, value_currency
"""

NAIVE_REPEATS = """
select count(*) from goal_outcomes o join enrollments e
  on e.tenant_id = o.tenant_id and e.enrollment_id = o.enrollment_id
where o.tenant_id = $1 and o.journey_id = $2 and o.status = 2 and ($3 = 0 or e.version = $3)
  and o.occur_time >= $4 and o.occur_time < $5
"""

NAIVE_CREDITED_ELSEWHERE = """
select count(*) from goal_outcomes o
where o.tenant_id = $1 and o.journey_id <> $2 and o.status in (1, 2)
  and o.occur_time >= $4 and o.occur_time < $5
  and exists (
    select 1 from enrollments e where e.tenant_id = $1 and e.contact_id = o.contact_id
      and e.journey_id = $2 and ($3 = 0 or e.version = $3)
      and e.enter_time <= o.occur_time and (e.exit_time is null or e.exit_time >= o.occur_time))
"""


@dataclass(frozen=True, slots=True)
class Variant:
    """A report request: all time, or the last `days` days (fixed when measuring starts)."""

    name: str
    days: int | None = None
    time_zone: str = ""

    def bounds(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        if self.days is None:
            return None, None
        return now - timedelta(days=self.days), now

    def request(self, journey_id: str, now: datetime) -> pb.GetJourneyReportRequest:
        request = pb.GetJourneyReportRequest(journey_id=journey_id, time_zone=self.time_zone)
        start, end = self.bounds(now)
        if start is not None and end is not None:
            request.start_time.CopyFrom(ts(start))
            request.end_time.CopyFrom(ts(end))
        return request


VARIANTS = (Variant("all time"), Variant("30 days, Paris", 30, "Europe/Paris"))


@dataclass(frozen=True, slots=True)
class Timing:
    seconds: tuple[float, ...]
    figures: dict[str, int]  # the report's headline figures, to compare ours and naive

    def percentile_ms(self, q: float) -> float:
        """Linear interpolation between the closest ranks."""
        ordered = sorted(self.seconds)
        position = (len(ordered) - 1) * q
        low, high = math.floor(position), math.ceil(position)
        value = ordered[low] + (ordered[high] - ordered[low]) * (position - low)
        return value * 1000

    @property
    def p50(self) -> float:
        return self.percentile_ms(0.5)

    @property
    def p99(self) -> float:
        return self.percentile_ms(0.99)


async def measure_report(
    target: str, tenant_id: str, journey_id: str, variant: Variant, calls: int, warmup: int
) -> Timing:
    """GetJourneyReport through the server at `target`, one call at a time."""
    request = variant.request(journey_id, datetime.now(UTC))
    metadata = (("x-tenant-id", tenant_id),)
    seconds: list[float] = []
    async with grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
        for index in range(warmup + calls):
            started = time.perf_counter()
            response = await stub.GetJourneyReport(request, metadata=metadata, timeout=CALL_TIMEOUT)
            if index >= warmup:
                seconds.append(time.perf_counter() - started)
    report = response.report
    figures = {
        "entered": report.entered,
        "active": report.active,
        "exited": report.exited,
        "engaged": report.engaged,
        "goal conversions": report.goal_conversions,
        "repeats": report.repeat_goal_events,
        "credited elsewhere": report.goal_events_credited_elsewhere,
    }
    return Timing(tuple(seconds), figures)


async def naive_report(
    conn: asyncpg.Connection,
    tenant_id: str,
    journey_id: str,
    start: datetime,
    end: datetime,
    exclude_machine_opens: bool,
) -> dict[str, int]:
    """The report's figures as the service computed them at e70d698, all versions."""
    args = (tenant_id, journey_id, 0, start, end)
    async with conn.transaction():
        row = await conn.fetchrow(NAIVE_ENROLLMENT_FIGURES, *args, exclude_machine_opens)
        await conn.fetch(NAIVE_TOUCHPOINTS_BY_MESSAGE, *args)
        awards = await conn.fetch(NAIVE_AWARDS, *args)
        repeats = await conn.fetchval(NAIVE_REPEATS, *args)
        elsewhere = await conn.fetchval(NAIVE_CREDITED_ELSEWHERE, *args)
    assert row is not None
    return {
        "entered": row["entered"],
        "active": row["active"],
        "exited": row["exited"],
        "engaged": row["engaged"],
        "goal conversions": sum(a["n"] for a in awards if a["conversion_id"] == ""),
        "repeats": repeats,
        "credited elsewhere": elsewhere,
    }


async def measure_naive(
    url: str, tenant_id: str, journey_id: str, variant: Variant, calls: int, warmup: int
) -> Timing:
    """The naive report with asyncpg on one connection, one call at a time."""
    start, end = variant.bounds(datetime.now(UTC))
    conn = await asyncpg.connect(url)
    try:
        exclude = await conn.fetchval(
            "select exclude_machine_opens from journeys where tenant_id = $1 and journey_id = $2",
            tenant_id,
            journey_id,
        )
        seconds: list[float] = []
        figures: dict[str, int] = {}
        for index in range(warmup + calls):
            started = time.perf_counter()
            figures = await naive_report(
                conn, tenant_id, journey_id, start or DAWN, end or datetime.now(UTC), exclude
            )
            if index >= warmup:
                seconds.append(time.perf_counter() - started)
    finally:
        await conn.close()
    return Timing(tuple(seconds), figures)


@dataclass(frozen=True, slots=True)
class Result:
    """One size's load and its timings per variant (ours, naive)."""

    counts: dict[str, int]
    load_seconds: float | None  # None: a database loaded before (--database)
    rebuild_seconds: float | None
    database_bytes: int
    timings: dict[str, tuple[Timing, Timing]]


async def measure(
    url: str, tenant_id: str, journey_id: str, calls: int, warmup: int
) -> dict[str, tuple[Timing, Timing]]:
    """Every variant through a `serve` process started on the loaded database, then naive."""
    timings: dict[str, tuple[Timing, Timing]] = {}
    async with serve("--database-url", url) as server:
        for variant in VARIANTS:
            try:
                ours = await measure_report(
                    server.target, tenant_id, journey_id, variant, calls, warmup
                )
            except grpc.aio.AioRpcError:
                tail = server.process.output().splitlines()[-20:]
                print("the server's last log lines:", *tail, sep="\n  ")
                raise
            naive = await measure_naive(url, tenant_id, journey_id, variant, calls, warmup)
            timings[variant.name] = (ours, naive)
            print(f"{journey_id}, {variant.name}: ours {ours.figures}")
            print(f"{journey_id}, {variant.name}: naive {naive.figures}")
    return timings


async def run_size(admin_url: str, spec: TenantSpec, calls: int, warmup: int, keep: bool) -> Result:
    """A fresh database, the tenant loaded at `spec`'s size, the measurements; the database is
    dropped after unless `keep`."""
    async with scratch_database(admin_url, keep) as url:
        loaded = await load_tenant(url, spec)
        timings = await measure(url, spec.tenant_id, loaded.largest_journey, calls, warmup)
        size = await _database_bytes(url)
    return Result(loaded.counts, loaded.load_seconds, loaded.rebuild_seconds, size, timings)


async def run_loaded(url: str, tenant_id: str, calls: int, warmup: int) -> Result:
    """The measurements on a database loaded before (kept with --keep)."""
    conn = await asyncpg.connect(url)
    try:
        counts = await tenant_counts(conn, tenant_id)
        journey_id = await largest_journey(conn, tenant_id)
    finally:
        await conn.close()
    timings = await measure(url, tenant_id, journey_id, calls, warmup)
    return Result(counts, None, None, await _database_bytes(url), timings)


async def _database_bytes(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        size = await conn.fetchval("select pg_database_size(current_database())")
    finally:
        await conn.close()
    assert isinstance(size, int)
    return size


def table(results: Sequence[Result]) -> str:
    header = (
        "enrollments",
        "touchpoints",
        "goal events",
        "load s",
        "rebuild s",
        "db size",
        "variant",
        "ours p50",
        "ours p99",
        "naive p50",
        "naive p99",
        "naive/ours p99",
    )
    rows = [header]
    for result in results:
        for variant, (ours, naive) in result.timings.items():
            rows.append(
                (
                    f"{result.counts['enrollments']:,}",
                    f"{result.counts['touchpoints']:,}",
                    f"{result.counts['goal_events']:,}",
                    "-" if result.load_seconds is None else f"{result.load_seconds:.0f}",
                    "-" if result.rebuild_seconds is None else f"{result.rebuild_seconds:.0f}",
                    f"{result.database_bytes / 2**30:.1f} GiB",
                    variant,
                    f"{ours.p50:.0f} ms",
                    f"{ours.p99:.0f} ms",
                    f"{naive.p50:.0f} ms",
                    f"{naive.p99:.0f} ms",
                    f"{naive.p99 / ours.p99:.2f}",
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = [
        " | ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="admin URL of a Postgres server")
    parser.add_argument(
        "--touchpoints", type=int, nargs="+", default=[1_000_000], help="one run per size"
    )
    parser.add_argument("--calls", type=int, default=50, help="timed calls per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    parser.add_argument(
        "--database", help="measure this database, loaded and kept before, instead of loading"
    )
    add_size_arguments(parser)
    args = parser.parse_args()
    results = []
    if args.database:
        url = urlunsplit(urlsplit(args.database_url)._replace(path=f"/{args.database}"))
        results.append(await run_loaded(url, args.tenant, args.calls, args.warmup))
    for touchpoints in [] if args.database else args.touchpoints:
        spec = spec_from_arguments(args, touchpoints)
        print(f"== {touchpoints:,} touchpoints")
        results.append(await run_size(args.database_url, spec, args.calls, args.warmup, args.keep))
    print()
    print(table(results))


if __name__ == "__main__":
    asyncio.run(main())
