"""Ingest benchmark: touchpoints per second through the service, against Postgres alone.

Both runs use the same machine, the same fresh database schema, the same rows, batch size and
concurrency. The baseline writes the rows straight into the touchpoints table with asyncpg
(unnest + ON CONFLICT, as the service does); the service run sends them through
BatchRecordTouchpoints to a real `journey-conversions serve` process. The figure that matters is
the ratio: how much of Postgres's own speed survives our code.

    .venv/bin/python -m bench.ingest --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import grpc
from journeys.conversions.v1 import events_pb2, journey_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import clock, db, domain
from journey_conversions.store import ingest, partitions
from tests.builders import ts
from tests.processes import serve

if TYPE_CHECKING:
    from tests.builders import Stub


@dataclass(frozen=True)
class Row:
    event_id: str
    contact_id: str
    occur_time: datetime


def make_rows(count: int, contacts: int, tag: str) -> list[Row]:
    now = datetime.now(UTC)
    return [
        Row(f"{tag}-{i}", f"contact-{i % contacts}", now - timedelta(minutes=i % 10_000))
        for i in range(count)
    ]


def batches(rows: list[Row], size: int) -> list[list[Row]]:
    return [rows[i : i + size] for i in range(0, len(rows), size)]


async def run_concurrently(
    jobs: Sequence[Callable[[], Awaitable[None]]], concurrency: int
) -> float:
    """Seconds to run every job with at most `concurrency` in flight."""
    queue: asyncio.Queue[Callable[[], Awaitable[None]]] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)

    async def worker() -> None:
        while not queue.empty():
            await queue.get_nowait()()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def baseline(url: str, rows: list[Row], size: int, concurrency: int) -> float:
    pool = await asyncpg.create_pool(url, min_size=concurrency, max_size=concurrency)
    assert pool is not None

    async def insert(batch: list[Row]) -> None:
        # The service's dedupe: the id first (touchpoint_ids), the touchpoint only when new.
        await pool.execute(
            "with fresh as (insert into touchpoint_ids (tenant_id, event_id, contact_id,"
            " occur_time) select 'bench', * from unnest($1::text[], $2::text[],"
            " $3::timestamptz[]) on conflict (tenant_id, event_id) do nothing"
            " returning event_id)"
            " insert into touchpoints (tenant_id, event_id, contact_id, journey_id, version,"
            " message_id, channel, action, occur_time, machine_generated)"
            " select 'bench', e, c, 'bench', 1, 'email', 1, 1, t, false"
            " from unnest($1::text[], $2::text[], $3::timestamptz[]) as x(e, c, t)"
            " where x.e in (select event_id from fresh)",
            [r.event_id for r in batch],
            [r.contact_id for r in batch],
            [r.occur_time for r in batch],
        )

    async with db.connection(pool) as conn:  # the rows' months, as the server prepares them
        await partitions.ensure(conn, [r.occur_time for r in rows])
    try:
        jobs = [functools.partial(insert, batch) for batch in batches(rows, size)]
        return await run_concurrently(jobs, concurrency)
    finally:
        await pool.close()


async def through_store(url: str, rows: list[Row], size: int, concurrency: int) -> float:
    """Seconds to write the rows with the service's own store function for a batch
    (store.ingest.record_touchpoints, a transaction each, `concurrency` at once) straight from
    asyncpg: the SQL the service sends for BatchRecordTouchpoints, without gRPC, parsing or
    rendering. The journey is defined first through a `serve` process, stopped before timing."""
    async with (
        serve("--database-url", url) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        await define_bench_journey(service_pb2_grpc.JourneyConversionsServiceStub(channel))
    items = [
        domain.Touchpoint(
            r.event_id,
            r.contact_id,
            "bench",
            1,
            "email",
            domain.Channel.EMAIL,
            domain.Action.DELIVERED,
            r.occur_time,
        )
        for r in rows
    ]
    # The server's, with its default allowed lateness (30 days).
    horizon = clock.TimePolicy(timedelta(days=30), timedelta(0)).horizon(datetime.now(UTC))
    pool = await db.create_pool(url, concurrency, concurrency)

    async def write(batch: list[domain.Touchpoint]) -> None:
        async def work(conn: asyncpg.Connection) -> list[ingest.ItemResult]:
            return await ingest.record_touchpoints(conn, "default", batch, horizon)

        assert all(r.status == ingest.ItemStatus.ACCEPTED for r in await db.transaction(pool, work))

    try:
        jobs = [functools.partial(write, items[i : i + size]) for i in range(0, len(items), size)]
        return await run_concurrently(jobs, concurrency)
    finally:
        await pool.close()


async def define_bench_journey(stub: Stub) -> None:
    """Journey "bench" with the one email every row is a touchpoint of."""
    await stub.DefineJourney(
        pb.DefineJourneyRequest(
            request_id="bench",
            journey=journey_pb2.Journey(
                journey_id="bench",
                goal=journey_pb2.GoalCriterion(event_type=journey_pb2.GOAL_EVENT_TYPE_ORDER_PLACED),
                versions=[
                    journey_pb2.JourneyVersion(
                        version=1,
                        messages=[
                            journey_pb2.JourneyMessage(
                                message_id="email", channel=journey_pb2.CHANNEL_EMAIL
                            )
                        ],
                    )
                ],
            ),
        )
    )


def touchpoint_batches(rows: list[Row], size: int) -> list[pb.BatchRecordTouchpointsRequest]:
    """The rows as touchpoints of journey "bench", `size` to a batch."""
    return [
        pb.BatchRecordTouchpointsRequest(
            touchpoints=[
                events_pb2.Touchpoint(
                    event_id=r.event_id,
                    contact_id=r.contact_id,
                    journey_id="bench",
                    version=1,
                    message_id="email",
                    channel=journey_pb2.CHANNEL_EMAIL,
                    action=events_pb2.TOUCHPOINT_ACTION_DELIVERED,
                    occur_time=ts(r.occur_time),
                )
                for r in batch
            ]
        )
        for batch in batches(rows, size)
    ]


def all_accepted(results: Sequence[events_pb2.ItemResult]) -> None:
    assert all(r.status == events_pb2.ITEM_STATUS_ACCEPTED for r in results)


async def through_service(target: str, rows: list[Row], size: int, concurrency: int) -> float:
    """Seconds to send the rows through BatchRecordTouchpoints, `concurrency` calls at once."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
        await define_bench_journey(stub)
        prepared = touchpoint_batches(rows, size)

        async def record(request: pb.BatchRecordTouchpointsRequest) -> None:
            all_accepted((await stub.BatchRecordTouchpoints(request, timeout=120)).results)

        return await run_concurrently(
            [functools.partial(record, request) for request in prepared], concurrency
        )


async def through_stream(target: str, rows: list[Row], size: int) -> tuple[float, int]:
    """Seconds to send the rows as StreamIngest messages of `size` on one stream, written as
    fast as the server reads them (it keeps 4 unanswered at most), and the messages sent."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
        await define_bench_journey(stub)
        prepared = [
            pb.StreamIngestRequest(sequence=index, touchpoints=batch)
            for index, batch in enumerate(touchpoint_batches(rows, size))
        ]
        started = time.perf_counter()
        call = stub.StreamIngest(timeout=600)

        async def write() -> None:
            for message in prepared:
                await call.write(message)
            await call.done_writing()

        writer = asyncio.ensure_future(write())
        answered = 0
        async for response in call:
            assert response.sequence == answered and not response.HasField("error")
            all_accepted(response.results)
            answered += 1
        await writer
        assert answered == len(prepared)
        return time.perf_counter() - started, answered


async def fresh_database(admin_url: str) -> str:
    name = f"jc_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_url)
    await conn.execute(f'create database "{name}"')
    await conn.close()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    await db.migrate(url)
    return url


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str, keep: bool = False) -> AsyncIterator[str]:
    """A fresh migrated database (fresh_database), dropped after unless `keep`."""
    url = await fresh_database(admin_url)
    try:
        yield url
    finally:
        if keep:
            print(f"kept database {url.rsplit('/', 1)[1]}")
        else:
            await drop_database(admin_url, url)


async def drop_database(admin_url: str, url: str) -> None:
    """Drops the database of `url` (made by fresh_database)."""
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'drop database if exists "{url.rsplit("/", 1)[1]}" with (force)')
    finally:
        await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="admin URL of a Postgres server")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--contacts", type=int, default=20_000)
    args = parser.parse_args()

    base_rows = make_rows(args.rows, args.contacts, "base")
    async with scratch_database(args.database_url) as base_url:
        base_seconds = await baseline(base_url, base_rows, args.batch, args.concurrency)

    service_rows = make_rows(args.rows, args.contacts, "svc")
    async with (
        scratch_database(args.database_url) as service_url,
        serve("--database-url", service_url) as server,
    ):
        service_seconds = await through_service(
            server.target, service_rows, args.batch, args.concurrency
        )

    base_rate = args.rows / base_seconds
    service_rate = args.rows / service_seconds
    print(f"rows={args.rows} batch={args.batch} concurrency={args.concurrency}")
    print(f"postgres alone (asyncpg unnest): {base_rate:10.0f} touchpoints/s")
    print(f"through the service (gRPC batch): {service_rate:10.0f} touchpoints/s")
    print(f"service / postgres ratio:         {service_rate / base_rate:10.2f}")


if __name__ == "__main__":
    asyncio.run(main())
