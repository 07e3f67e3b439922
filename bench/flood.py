"""Flood benchmark: ingest at flood scale, against the ceilings of this machine, in one run.

(a) the unary ceiling: RecordTouchpoint on a no-op grpc.aio server (bench/noop_server.py) in its
own process; (b) the ingest ceiling: asyncpg unnest batches straight into the touchpoints table
(bench.ingest.baseline), and (b') the store function the service runs for a batch, called
straight from asyncpg (bench.ingest.through_store: our SQL without our gRPC and Python); (c) our
unary writes: RecordTouchpoint through a real `journey-conversions serve` process at the
concurrencies of (a), and c/a, plus RecordGoalEvent and EnterJourney at the highest
concurrency; (d) our batch ingest: BatchRecordTouchpoints (bench.ingest.through_service) and
StreamIngest (bench.ingest.through_stream: the same batches as messages of one stream, the
server keeping 4 unanswered), each with d/b and d/b'; (e) the latency of
RecordGoalEvent sent open loop at a steady rate against a realistic tenant (bench.tenant);
(f) the peak RSS (VmHWM) of every server process. (a) to (d) are closed loops: N workers each
send their next call when the previous one answers. Every measurement gets a fresh database,
dropped after it unless --keep; --database NAME measures (e) on a tenant loaded and kept before.

    .venv/bin/python -m bench.flood --database-url postgresql://postgres@127.0.0.1:5432/postgres
    .venv/bin/python -m bench.flood --database-url postgresql://postgres@127.0.0.1:5432/postgres \\
        --tiny   # a smoke run in well under a minute
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import math
import os
import random
import re
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
from journeys.conversions.v1 import events_pb2, journey_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from bench.ingest import (
    baseline,
    make_rows,
    run_concurrently,
    scratch_database,
    through_service,
    through_store,
    through_stream,
)
from bench.report import Timing
from bench.tenant import (
    PRODUCTS,
    TenantSpec,
    add_size_arguments,
    load_tenant,
    spec_from_arguments,
    tenant_counts,
)
from journey_conversions.domain import GoalEventType
from journey_conversions.servicer.streaming import IN_FLIGHT
from tests.builders import define_journey, enter, goal, goal_event, message, touchpoint, ts
from tests.processes import serve

if TYPE_CHECKING:
    from tests.builders import Stub

T = TypeVar("T")
Call = Callable[[int], Awaitable[object]]  # the call of index i, not yet awaited

REPO = Path(__file__).resolve().parents[1]
TENANT = "bench"  # of the unary measurements; (e) uses the loaded tenant's id
METADATA = (("x-tenant-id", TENANT),)
JOURNEY, MESSAGE = "bench", "email"
UNARY_CONTACTS = 20_000  # spread over many contacts, as real traffic is: few lock waits
CALL_TIMEOUT = 30.0
START_TIMEOUT = 30.0
OK = "OK"
NOT_SENT = "NOT SENT (cap)"  # open loop: the call's turn came with the cap of calls in flight

# --tiny: every size small enough for a smoke run; flags given explicitly still win.
TINY = {
    "unary_calls": 300,
    "rows": 5_000,
    "goal_rate": 20.0,
    "goal_seconds": 2.0,
    "goal_warmup": 0.5,
    "goal_touchpoints": [2_000],
    "journeys": 3,
    "enrollments": 200,
    "goal_events": 100,
    "seed": 7,
}


@dataclass(frozen=True, slots=True)
class Options:
    unary_calls: int
    concurrencies: tuple[int, ...]
    rows: int
    batch: int
    in_flight: int
    contacts: int
    goal_rate: float
    goal_seconds: float
    goal_warmup: float  # seconds at the same rate before the measured ones, not counted
    goal_cap: int
    goal_timeout: float
    tenant_id: str  # of (e)
    goal_specs: tuple[TenantSpec, ...]  # one loaded tenant per size, unless `database`
    database: str | None  # a tenant loaded and kept before: (e) measures it, loading nothing
    keep: bool


@dataclass(frozen=True, slots=True)
class Throughput:
    """A closed-loop measurement: `done` calls (or rows) that succeeded in `seconds`."""

    done: int
    seconds: float
    codes: Counter[str] = field(default_factory=Counter)  # the statuses of calls
    peak_rss_mib: float | None = None  # of the server process; None: no server

    @property
    def rate(self) -> float:
        return self.done / self.seconds


@dataclass(frozen=True, slots=True)
class OpenLoop:
    """An open-loop measurement: latencies (seconds from each call's scheduled time) of the calls
    answered OK, and the status of every call scheduled."""

    rate: float  # calls scheduled per second
    seconds: float  # from the first scheduled call to the last answer, or the schedule's end
    codes: Counter[str]
    latencies: tuple[float, ...]

    @property
    def sent(self) -> int:
        return sum(n for code, n in self.codes.items() if code != NOT_SENT)

    @property
    def achieved(self) -> float:
        """Calls answered OK per second."""
        return self.codes[OK] / self.seconds

    @property
    def timing(self) -> Timing | None:
        return Timing(self.latencies, {}) if self.latencies else None


@dataclass(frozen=True, slots=True)
class GoalLatency:
    touchpoints: int  # of the tenant measured
    enrollments: int
    loop: OpenLoop
    peak_rss_mib: float
    postgres: PostgresWork  # while the timed calls ran


@dataclass(frozen=True, slots=True)
class PostgresWork:
    """What the whole Postgres server did over a span (every database on it): the WAL it wrote
    and the checkpoints it began, the ones requested by WAL volume (max_wal_size) among them.
    A commit waits behind a checkpoint's final sync: the tail of (e) shows where they fell."""

    wal_bytes: int
    checkpoints: int
    requested: int

    @staticmethod
    async def read(conn: asyncpg.Connection) -> PostgresWork:
        row = await conn.fetchrow(
            "select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint as wal,"
            " checkpoints_timed + checkpoints_req as checkpoints, checkpoints_req"
            " from pg_stat_bgwriter"
        )
        assert row is not None
        return PostgresWork(row["wal"], row["checkpoints"], row["checkpoints_req"])

    def __sub__(self, earlier: PostgresWork) -> PostgresWork:
        return PostgresWork(
            self.wal_bytes - earlier.wal_bytes,
            self.checkpoints - earlier.checkpoints,
            self.requested - earlier.requested,
        )


@dataclass(frozen=True, slots=True)
class Flood:
    noop: dict[int, Throughput]  # (a), by concurrency
    ingest_ceiling: Throughput  # (b), rows
    store_alone: Throughput  # (b'), rows
    touchpoints: dict[int, Throughput]  # (c), by concurrency
    goal_events: Throughput  # (c), informational, at the highest concurrency
    entries: Throughput  # (c), informational, at the highest concurrency
    batches: Throughput  # (d), rows
    stream: Throughput  # (d), rows
    goal_latency: list[GoalLatency]  # (e), one per tenant size


def say(text: str) -> None:
    print(text, flush=True)


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"no VmHWM for process {pid}")
    return int(found.group(1)) / 1024


async def status_of(call: Awaitable[object]) -> str:
    """The status code name the call ends with."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code().name
    return OK


async def closed_loop(call: Call, calls: int, concurrency: int) -> tuple[float, Counter[str]]:
    """Seconds for `calls` calls with `concurrency` workers back to back, and their statuses;
    after `concurrency` untimed calls that open the connection and warm both sides."""

    async def one(index: int, codes: Counter[str]) -> None:
        codes[await status_of(call(index))] += 1

    warmup: Counter[str] = Counter()
    warm = [functools.partial(one, i, warmup) for i in range(concurrency)]
    await run_concurrently(warm, concurrency)
    codes: Counter[str] = Counter()
    timed = range(concurrency, concurrency + calls)
    seconds = await run_concurrently([functools.partial(one, i, codes) for i in timed], concurrency)
    return seconds, codes


async def open_loop(send: Call, rate: float, seconds: float, cap: int) -> OpenLoop:
    """Call i fires at start + i/rate whatever is still outstanding (unless `cap` calls are);
    each latency counts from the call's scheduled time, so a slow server cannot hide its queue
    by slowing the sender down."""
    loop = asyncio.get_running_loop()
    codes: Counter[str] = Counter()
    latencies: list[float] = []
    outstanding: set[asyncio.Task[None]] = set()

    async def fire(index: int, scheduled: float) -> None:
        code = await status_of(send(index))
        codes[code] += 1
        if code == OK:
            latencies.append(loop.time() - scheduled)

    start = loop.time()
    calls = round(rate * seconds)
    for index in range(calls):
        scheduled = start + index / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        if len(outstanding) >= cap:
            codes[NOT_SENT] += 1
            continue
        task = asyncio.create_task(fire(index, scheduled))
        outstanding.add(task)
        task.add_done_callback(outstanding.discard)
    await asyncio.gather(*outstanding)
    # At least the schedule's length: answers that all come in time achieve `rate`, not more.
    elapsed = max(loop.time() - start, calls / rate)
    return OpenLoop(rate, elapsed, codes, tuple(latencies))


def contact(index: int) -> str:
    return f"contact-{index % UNARY_CONTACTS}"


def record_touchpoint(stub: Stub) -> Call:
    at = ts(datetime.now(UTC))
    return lambda index: stub.RecordTouchpoint(
        pb.RecordTouchpointRequest(
            touchpoint=touchpoint(f"tp-{index}", contact(index), JOURNEY, MESSAGE, at)
        ),
        metadata=METADATA,
        timeout=CALL_TIMEOUT,
    )


def record_goal_event(stub: Stub) -> Call:
    at = ts(datetime.now(UTC))
    return lambda index: stub.RecordGoalEvent(
        pb.RecordGoalEventRequest(
            goal_event=goal_event(f"ge-{index}", contact(index), "ORDER_PLACED", at)
        ),
        metadata=METADATA,
        timeout=CALL_TIMEOUT,
    )


def enter_journey(stub: Stub) -> Call:
    at = ts(datetime.now(UTC) - timedelta(minutes=1))
    return lambda index: stub.EnterJourney(
        enter(f"en-{index}", contact(index), JOURNEY, at), metadata=METADATA, timeout=CALL_TIMEOUT
    )


async def on_server(url: str, measure: Callable[[str], Awaitable[T]]) -> tuple[T, float]:
    """`measure(target)` against a `journey-conversions serve` process on the database at
    `url`, and that process's peak RSS in MiB (read before it stops)."""
    async with serve("--database-url", url) as server:
        server.process.drop_output()
        result = await measure(server.target)
        return result, peak_rss_mib(server.process.proc.pid)


@contextlib.asynccontextmanager
async def noop_server() -> AsyncIterator[tuple[str, int]]:
    """A `python -m bench.noop_server` process: its target and pid; terminated after."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.noop_server",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT))
        yield f"127.0.0.1:{port}", proc.pid
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


async def noop_ceiling(calls: int, concurrency: int) -> Throughput:
    """(a) RecordTouchpoint on the no-op server."""
    async with noop_server() as (target, pid), grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
        seconds, codes = await closed_loop(record_touchpoint(stub), calls, concurrency)
        return Throughput(codes[OK], seconds, codes, peak_rss_mib(pid))


async def ingest_ceiling(admin_url: str, options: Options) -> Throughput:
    """(b) asyncpg batches straight into the touchpoints table."""
    rows = make_rows(options.rows, options.contacts, "base")
    async with scratch_database(admin_url, options.keep) as url:
        seconds = await baseline(url, rows, options.batch, options.in_flight)
    return Throughput(options.rows, seconds)


async def store_alone(admin_url: str, options: Options) -> Throughput:
    """(b') the service's store function for a batch, straight from asyncpg."""
    rows = make_rows(options.rows, options.contacts, "store")
    async with scratch_database(admin_url, options.keep) as url:
        seconds = await through_store(url, rows, options.batch, options.in_flight)
    return Throughput(options.rows, seconds)


async def our_unary(
    admin_url: str, keep: bool, make_call: Callable[[Stub], Call], calls: int, concurrency: int
) -> Throughput:
    """(c) unary calls through a `serve` process, on a journey defined first."""

    async def measure(target: str) -> tuple[float, Counter[str]]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
            journey = define_journey(JOURNEY, [message(MESSAGE)], goal("ORDER_PLACED"))
            await stub.DefineJourney(journey, metadata=METADATA, timeout=CALL_TIMEOUT)
            return await closed_loop(make_call(stub), calls, concurrency)

    async with scratch_database(admin_url, keep) as url:
        (seconds, codes), rss = await on_server(url, measure)
    return Throughput(codes[OK], seconds, codes, rss)


async def our_batch_ingest(admin_url: str, options: Options) -> Throughput:
    """(d) BatchRecordTouchpoints through a `serve` process (every item must be accepted)."""
    rows = make_rows(options.rows, options.contacts, "svc")

    async def measure(target: str) -> float:
        return await through_service(target, rows, options.batch, options.in_flight)

    async with scratch_database(admin_url, options.keep) as url:
        seconds, rss = await on_server(url, measure)
    calls = math.ceil(options.rows / options.batch)
    return Throughput(options.rows, seconds, Counter({OK: calls}), rss)


async def our_stream_ingest(admin_url: str, options: Options) -> Throughput:
    """(d) The same rows and batch size as our_batch_ingest, as the messages of one StreamIngest
    stream through a `serve` process (every item must be accepted)."""
    rows = make_rows(options.rows, options.contacts, "svc")

    async def measure(target: str) -> tuple[float, int]:
        return await through_stream(target, rows, options.batch)

    async with scratch_database(admin_url, options.keep) as url:
        (seconds, messages), rss = await on_server(url, measure)
    return Throughput(options.rows, seconds, Counter({OK: messages}), rss)


# Active, treated enrollments first (their goal events are the ones attribution works on),
# each with its journey's current goal; exited ones only when too few are active.
GOAL_TARGETS = """
with goals as (
  select distinct on (journey_id) journey_id, criterion from journey_goals
  where tenant_id = $1 order by journey_id, seq desc)
select e.contact_id, (g.criterion->>'event_type')::int as event_type,
  array(select jsonb_array_elements_text(g.criterion->'product_ids')) as product_ids,
  array(select jsonb_array_elements_text(g.criterion->'form_ids')) as form_ids
from enrollments e join goals g using (journey_id)
where e.tenant_id = $1 and not e.holdout and g.criterion is not null
order by e.exit_time is not null, random()
limit $2
"""


def goal_template(
    rng: random.Random,
    contact_id: str,
    event_type: int,
    products: Sequence[str],
    forms: Sequence[str],
) -> events_pb2.GoalEvent:
    """A goal event of the contact meeting its journey's goal, as bench.tenant makes them: an
    order of one of the goal's products (any product when the goal names none) with a value,
    or a submission of the goal's form."""
    event = events_pb2.GoalEvent(
        contact_id=contact_id, event_type=journey_pb2.GoalEventType.ValueType(event_type)
    )
    if event_type == GoalEventType.ORDER_PLACED:
        event.product_ids.append(rng.choice(products or PRODUCTS))
        event.value.currency_code = "EUR"
        event.value.amount_micros = rng.randint(500, 40_000) * 10_000
    elif event_type == GoalEventType.FORM_SUBMITTED and forms:
        event.form_id = rng.choice(forms)
    return event


async def goal_templates(url: str, tenant_id: str, count: int) -> list[events_pb2.GoalEvent]:
    """Up to `count` goal events of enrolled contacts matching their journeys' goals."""
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(GOAL_TARGETS, tenant_id, count)
    finally:
        await conn.close()
    assert rows, f"tenant {tenant_id!r} has no enrollments in journeys with a goal"
    rng = random.Random(count)
    return [
        goal_template(rng, r["contact_id"], r["event_type"], r["product_ids"], r["form_ids"])
        for r in rows
    ]


def goal_sender(
    stub: Stub, tenant_id: str, templates: Sequence[events_pb2.GoalEvent], timeout: float
) -> Call:
    """Call i sends the next template as a new goal event (a fresh id) happening now."""
    metadata = (("x-tenant-id", tenant_id),)
    run = uuid.uuid4().hex[:8]  # fresh ids even on a kept database measured again

    def send(index: int) -> Awaitable[object]:
        event = events_pb2.GoalEvent()
        event.CopyFrom(templates[index % len(templates)])
        event.event_id = f"flood-{run}-{index}"
        event.occur_time.CopyFrom(ts(datetime.now(UTC)))
        return stub.RecordGoalEvent(
            pb.RecordGoalEventRequest(goal_event=event), metadata=metadata, timeout=timeout
        )

    return send


async def goal_latency(url: str, tenant_id: str, options: Options) -> GoalLatency:
    """(e) RecordGoalEvent open loop through a `serve` process on a loaded tenant."""
    calls = round(options.goal_rate * options.goal_seconds)
    templates = await goal_templates(url, tenant_id, min(calls, 100_000))

    async def measure(target: str) -> tuple[OpenLoop, PostgresWork]:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
            # Warm first, as (a) to (c) do: a server just started holds no plans, rules or
            # connections yet, which its first second of calls would pay for.
            warm = goal_sender(stub, tenant_id, templates, options.goal_timeout)
            await open_loop(warm, options.goal_rate, options.goal_warmup, options.goal_cap)
            send = goal_sender(stub, tenant_id, templates, options.goal_timeout)
            before = await PostgresWork.read(conn)
            measured = await open_loop(
                send, options.goal_rate, options.goal_seconds, options.goal_cap
            )
            return measured, await PostgresWork.read(conn) - before

    conn = await asyncpg.connect(url)
    try:
        (loop, work), rss = await on_server(url, measure)
        counts = await tenant_counts(conn, tenant_id)
    finally:
        await conn.close()
    return GoalLatency(counts["touchpoints"], counts["enrollments"], loop, rss, work)


async def goal_latencies(admin_url: str, options: Options) -> list[GoalLatency]:
    """(e) on the kept --database, or on a fresh database per tenant size, loaded first."""
    if options.database is not None:
        url = urlunsplit(urlsplit(admin_url)._replace(path=f"/{options.database}"))
        return [await goal_latency(url, options.tenant_id, options)]
    measured = []
    for spec in options.goal_specs:
        say(f"== (e) loading a tenant with {spec.touchpoints:,} touchpoints")
        async with scratch_database(admin_url, options.keep) as url:
            await load_tenant(url, spec)
            measured.append(await goal_latency(url, spec.tenant_id, options))
    return measured


async def flood(admin_url: str, options: Options) -> Flood:
    """Every measurement, one after the other (never two at once: they share the cores)."""
    calls, keep, highest = options.unary_calls, options.keep, max(options.concurrencies)
    noop: dict[int, Throughput] = {}
    for concurrency in options.concurrencies:
        say(f"== (a) no-op server, {concurrency} in flight")
        noop[concurrency] = await noop_ceiling(calls, concurrency)
    say("== (b) asyncpg batches into Postgres")
    ceiling = await ingest_ceiling(admin_url, options)
    say("== (b') our batch SQL from asyncpg")
    ours_alone = await store_alone(admin_url, options)
    touchpoints: dict[int, Throughput] = {}
    for concurrency in options.concurrencies:
        say(f"== (c) RecordTouchpoint, {concurrency} in flight")
        touchpoints[concurrency] = await our_unary(
            admin_url, keep, record_touchpoint, calls, concurrency
        )
    say(f"== (c) RecordGoalEvent and EnterJourney, {highest} in flight")
    goal_events = await our_unary(admin_url, keep, record_goal_event, calls, highest)
    entries = await our_unary(admin_url, keep, enter_journey, calls, highest)
    say("== (d) BatchRecordTouchpoints")
    batches = await our_batch_ingest(admin_url, options)
    say("== (d) StreamIngest")
    stream = await our_stream_ingest(admin_url, options)
    latencies = await goal_latencies(admin_url, options)
    return Flood(
        noop, ceiling, ours_alone, touchpoints, goal_events, entries, batches, stream, latencies
    )


def statuses(codes: Counter[str]) -> str:
    return ", ".join(f"{code} {count:,}" for code, count in codes.most_common())


def calls_and_statuses(codes: Counter[str]) -> str:
    return f"{codes.total():,} calls: {statuses(codes)}" if codes else ""


def mib(value: float | None) -> str:
    return "" if value is None else f"{value:.0f} MiB"


def throughput_row(
    name: str, load: str, measured: Throughput, unit: str, ratio: str = "", notes: str = ""
) -> tuple[str, ...]:
    return (
        name,
        load,
        f"{measured.rate:,.0f} {unit}/s",
        ratio,
        mib(measured.peak_rss_mib),
        notes or calls_and_statuses(measured.codes),
    )


def latency_row(measured: GoalLatency, options: Options) -> tuple[str, ...]:
    loop = measured.loop
    timing = loop.timing
    latency = "no OK calls"
    if timing is not None:
        slowest = max(loop.latencies) * 1000
        latency = f"p50 {timing.p50:.1f} / p99 {timing.p99:.1f} ms (max {slowest:.1f})"
    work = measured.postgres
    notes = (
        f"sent {loop.sent:,}: {statuses(loop.codes)}; achieved {loop.achieved:,.1f}/s;"
        f" Postgres: {work.wal_bytes / max(loop.sent, 1) / 1024:,.1f} KiB WAL per call,"
        f" {work.checkpoints} checkpoints begun ({work.requested} by WAL volume)"
    )
    return (
        "(e) RecordGoalEvent, open loop",
        f"{loop.rate:g}/s for {options.goal_seconds:g} s,"
        f" {measured.enrollments:,} enr, {measured.touchpoints:,} tp",
        latency,
        "",
        mib(measured.peak_rss_mib),
        notes,
    )


def rows_of(result: Flood, options: Options) -> list[tuple[str, ...]]:
    batching = f"{options.batch}/batch, {options.in_flight} in flight"
    rows = [
        throughput_row("(a) no-op RecordTouchpoint", f"{c} in flight", t, "calls")
        for c, t in result.noop.items()
    ]
    rows.append(throughput_row("(b) asyncpg unnest", batching, result.ingest_ceiling, "rows"))
    alone = result.store_alone.rate
    rows.append(
        throughput_row(
            "(b') our batch SQL, asyncpg",
            batching,
            result.store_alone,
            "rows",
            f"b'/b {alone / result.ingest_ceiling.rate:.2f}",
            "store.ingest.record_touchpoints per batch, no gRPC",
        )
    )
    for concurrency, ours in result.touchpoints.items():
        ratio = f"c/a {ours.rate / result.noop[concurrency].rate:.2f}"
        rows.append(
            throughput_row("(c) RecordTouchpoint", f"{concurrency} in flight", ours, "calls", ratio)
        )
    highest = f"{max(options.concurrencies)} in flight"
    rows.append(throughput_row("(c) RecordGoalEvent", highest, result.goal_events, "calls"))
    rows.append(throughput_row("(c) EnterJourney", highest, result.entries, "calls"))
    ceiling = result.ingest_ceiling.rate
    ratio = f"d/b {result.batches.rate / ceiling:.2f}, d/b' {result.batches.rate / alone:.2f}"
    rows.append(
        throughput_row("(d) BatchRecordTouchpoints", batching, result.batches, "rows", ratio)
    )
    stream = result.stream
    rows.append(
        throughput_row(
            "(d) StreamIngest",
            f"{options.batch}/message, {IN_FLIGHT} in flight (server)",
            stream,
            "rows",
            f"d/b {stream.rate / ceiling:.2f}, d/b' {stream.rate / alone:.2f}",
            f"1 stream, {stream.codes[OK]:,} messages answered in order",
        )
    )
    rows.extend(latency_row(measured, options) for measured in result.goal_latency)
    return rows


def table(result: Flood, options: Options) -> str:
    header = ("measurement", "concurrency/size", "rate or p50/p99", "ratio", "peak RSS", "notes")
    rows = [header, *rows_of(result, options)]
    widths = [max(map(len, column)) for column in zip(*rows, strict=True)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def preamble(options: Options) -> str:
    tenants = (
        f"the kept database {options.database}"
        if options.database
        else " and ".join(
            f"a tenant of {s.enrollments:,} enrollments, {s.goal_events:,} goal events and"
            f" {s.touchpoints:,} touchpoints"
            for s in options.goal_specs
        )
    )
    return (
        "Load: closed loop for (a)-(d), N workers each sending the next call as soon as the"
        f" previous one answers: {options.unary_calls:,} unary calls per row after N untimed"
        f" warm-up calls at N = {', '.join(map(str, options.concurrencies))}, and"
        f" {options.rows:,} touchpoints in batches of {options.batch} with {options.in_flight}"
        " in flight (StreamIngest: the same batches as the messages of one stream, written as"
        f" fast as the server reads them; it keeps {IN_FLIGHT} unanswered). Open loop for (e):"
        " call i fires at start + i/rate whatever is still"
        f" outstanding ({options.goal_rate:g}/s for {options.goal_seconds:g} s after"
        f" {options.goal_warmup:g} untimed seconds at that rate, at most"
        f" {options.goal_cap:,} in flight, {options.goal_timeout:g} s per call), its latency"
        f" counted from its scheduled time, over OK calls; on {tenants} (bench.tenant). The client"
        " (this process), the server process (no-op, or journey-conversions serve) and Postgres"
        f" share this machine's {os.cpu_count()} cores; every row has its own fresh database."
        " Rates count successful calls (rows for b and d); ratios are ours over the ceiling."
    )


def parser() -> argparse.ArgumentParser:
    made = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    made.add_argument("--database-url", required=True, help="admin URL of a Postgres server")
    made.add_argument("--tiny", action="store_true", help="tiny sizes: a smoke run")
    made.add_argument("--unary-calls", type=int, default=20_000, help="timed calls per row")
    made.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    made.add_argument("--rows", type=int, default=200_000, help="touchpoints for (b) and (d)")
    made.add_argument("--batch", type=int, default=500)
    made.add_argument("--in-flight", type=int, default=4, help="batches in flight")
    made.add_argument("--contacts", type=int, default=20_000, help="of the (b) and (d) rows")
    made.add_argument("--goal-rate", type=float, default=500.0, help="goal events per second")
    made.add_argument("--goal-seconds", type=float, default=60.0)
    made.add_argument(
        "--goal-warmup", type=float, default=5.0, help="untimed seconds at the rate, first"
    )
    made.add_argument("--goal-cap", type=int, default=2_000, help="most goal events in flight")
    made.add_argument("--goal-timeout", type=float, default=10.0, help="seconds per goal event")
    made.add_argument(
        "--goal-touchpoints", type=int, nargs="+", default=[1_000_000], help="a tenant per size"
    )
    made.add_argument("--database", help="(e) on this database, loaded and kept before")
    made.add_argument("--keep", action="store_true", help="keep the databases")
    add_size_arguments(made)
    return made


def parse_arguments(argv: Sequence[str] | None = None) -> tuple[str, Options]:
    """The admin URL and the options of these arguments (the command line when None)."""
    made = parser()
    args = made.parse_args(argv)
    if args.tiny:
        made.set_defaults(**TINY)
        args = made.parse_args(argv)
    specs = tuple(spec_from_arguments(args, touchpoints) for touchpoints in args.goal_touchpoints)
    options = Options(
        unary_calls=args.unary_calls,
        concurrencies=tuple(args.concurrency),
        rows=args.rows,
        batch=args.batch,
        in_flight=args.in_flight,
        contacts=args.contacts,
        goal_rate=args.goal_rate,
        goal_seconds=args.goal_seconds,
        goal_warmup=args.goal_warmup,
        goal_cap=args.goal_cap,
        goal_timeout=args.goal_timeout,
        tenant_id=args.tenant,
        goal_specs=specs,
        database=args.database,
        keep=args.keep,
    )
    return args.database_url, options


async def main() -> None:
    admin_url, options = parse_arguments()
    result = await flood(admin_url, options)
    say("")
    say(preamble(options))
    say("")
    say(table(result, options))


if __name__ == "__main__":
    asyncio.run(main())
