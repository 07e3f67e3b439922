"""Soak: a sustained mixed load beyond the server's limits, and the server's memory over it.

A real `journey-conversions serve` process (small limits: --max-in-flight 16, 8 per tenant) on a
fresh database takes, for --seconds, `--clients` concurrent callers in four tenants: each loops
over EnterJourney, BatchRecordTouchpoints (50), RecordGoalEvent and GetJourneyReport with new
ids, with no pause, so the server is always over its limits. The server's RSS is read from
/proc at the start and every 10 s; at the end the table gives the RSS samples and the count of
each status (OVERLOADED refusals are the limits at work; anything else but OK is a failure).

    .venv/bin/python -m bench.soak --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import grpc
from journeys.conversions.v1 import events_pb2, journey_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from bench.ingest import scratch_database
from tests.builders import define_journey, goal, message, tenant, ts
from tests.processes import serve

if TYPE_CHECKING:
    from tests.builders import Stub

TENANTS = ("t1", "t2", "t3", "t4")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def caller(
    stub: Stub,
    name: str,
    worker: int,
    until: float,
    codes: Counter[str],
) -> None:
    metadata = tenant(name)
    for n in itertools.count():
        if time.monotonic() >= until:
            return
        key = f"w{worker}-{n}"
        now = datetime.now(UTC)
        calls: tuple[Awaitable[Any], ...] = (
            stub.EnterJourney(
                pb.EnterJourneyRequest(
                    enrollment=events_pb2.Enrollment(
                        enrollment_id=key,
                        contact_id=key,
                        journey_id="j",
                        version=1,
                        enter_time=ts(now - timedelta(minutes=5)),
                    )
                ),
                metadata=metadata,
                timeout=10,
            ),
            stub.BatchRecordTouchpoints(
                pb.BatchRecordTouchpointsRequest(
                    touchpoints=[
                        events_pb2.Touchpoint(
                            event_id=f"{key}-t{i}",
                            contact_id=key,
                            journey_id="j",
                            version=1,
                            message_id="m1",
                            channel=journey_pb2.CHANNEL_EMAIL,
                            action=events_pb2.TOUCHPOINT_ACTION_CLICKED,
                            occur_time=ts(now - timedelta(minutes=4, seconds=i)),
                        )
                        for i in range(50)
                    ]
                ),
                metadata=metadata,
                timeout=10,
            ),
            stub.RecordGoalEvent(
                pb.RecordGoalEventRequest(
                    goal_event=events_pb2.GoalEvent(
                        event_id=f"{key}-g",
                        contact_id=key,
                        event_type=journey_pb2.GOAL_EVENT_TYPE_ORDER_PLACED,
                        occur_time=ts(now - timedelta(minutes=1)),
                    )
                ),
                metadata=metadata,
                timeout=10,
            ),
            stub.GetJourneyReport(
                pb.GetJourneyReportRequest(journey_id="j"), metadata=metadata, timeout=10
            ),
        )
        for call in calls:
            try:
                await call
                codes["OK"] += 1
            except grpc.aio.AioRpcError as error:
                overloaded = error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                codes["RESOURCE_EXHAUSTED (OVERLOADED)" if overloaded else error.code().name] += 1


@dataclass(frozen=True)
class Soaked:
    rss_mib: list[tuple[float, float]]  # (seconds since start, MiB)
    codes: Counter[str]


async def soak(admin_url: str, seconds: float, clients: int) -> Soaked:
    """The load on a fresh database (dropped after) through a new server process."""
    limits = ("--max-in-flight", "16", "--max-in-flight-per-tenant", "8")
    async with (
        scratch_database(admin_url) as url,
        serve("--database-url", url, *limits) as server,
    ):
        pid = server.process.pid
        async with grpc.aio.insecure_channel(server.target) as channel:
            stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
            for name in TENANTS:
                await stub.DefineJourney(
                    define_journey("j", [message("m1")], goal("ORDER_PLACED")),
                    metadata=tenant(name),
                )
            samples = [(0.0, rss_mib(pid))]
            codes: Counter[str] = Counter()
            started = time.monotonic()
            until = started + seconds
            workers = [
                asyncio.create_task(caller(stub, TENANTS[i % len(TENANTS)], i, until, codes))
                for i in range(clients)
            ]
            while time.monotonic() < until:
                await asyncio.sleep(min(10.0, max(until - time.monotonic(), 0.0)))
                samples.append((time.monotonic() - started, rss_mib(pid)))
            await asyncio.gather(*workers)
            samples.append((time.monotonic() - started, rss_mib(pid)))
    return Soaked(samples, codes)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True, help="admin URL of a Postgres server")
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=32)
    args = parser.parse_args()
    soaked = await soak(args.database_url, args.seconds, args.clients)
    print(f"{args.clients} callers in {len(TENANTS)} tenants for {args.seconds:.0f} s")
    print("server RSS (MiB): " + ", ".join(f"{t:.0f}s {m:.0f}" for t, m in soaked.rss_mib))
    for code, count in soaked.codes.most_common():
        print(f"  {code}: {count}")


if __name__ == "__main__":
    asyncio.run(main())
