"""What a late touchpoint costs: re-deciding its contact, against an on-time touchpoint.

Each contact has a month of history (touchpoints and goal events). An on-time touchpoint
(happening now, after every goal event) can change nothing and skips attribution; a late one
(happening before the contact's goal events, within the window) re-decides the contact. Both
are sent one call at a time to a real server, in the same run; the figure is the ratio of their
mean latencies, and the rows a re-decision reads.

    .venv/bin/python -m bench.late_events --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import asyncpg
import grpc
from journeys.conversions.v1 import service_pb2 as pb
from journeys.conversions.v1 import service_pb2_grpc

from bench.ingest import scratch_database
from tests import builders
from tests.processes import serve

if TYPE_CHECKING:
    from tests.builders import Stub


def touch(event_id: str, contact: str, when: datetime) -> pb.RecordTouchpointRequest:
    return pb.RecordTouchpointRequest(
        touchpoint=builders.touchpoint(event_id, contact, "j", "m", builders.ts(when))
    )


async def timed(stub: Stub, requests: list[pb.RecordTouchpointRequest]) -> list[float]:
    seconds = []
    for request in requests:
        started = time.perf_counter()
        await stub.RecordTouchpoint(request)
        seconds.append(time.perf_counter() - started)
    return seconds


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="admin URL of a Postgres server")
    parser.add_argument("--contacts", type=int, default=200)
    parser.add_argument("--touchpoints", type=int, default=30, help="history per contact")
    parser.add_argument("--goal-events", type=int, default=5, help="history per contact")
    args = parser.parse_args()
    async with scratch_database(args.database_url) as url:
        await measure(url, args)


async def measure(url: str, args: argparse.Namespace) -> None:
    now = datetime.now(UTC)
    contacts = [f"c{i}" for i in range(args.contacts)]

    async with (
        serve("--database-url", url) as server,
        grpc.aio.insecure_channel(server.target) as channel,
    ):
        stub: Stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
        await stub.DefineJourney(
            builders.define_journey("j", [builders.message("m")], builders.goal("ORDER_PLACED"))
        )
        for contact in contacts:
            entered = builders.ts(now - timedelta(days=28))
            await stub.EnterJourney(builders.enter(f"e-{contact}", contact, "j", entered))
        history = [
            builders.touchpoint(
                f"h-{contact}-{k}",
                contact,
                "j",
                "m",
                builders.ts(now - timedelta(days=25) + timedelta(hours=18 * k)),
            )
            for contact in contacts
            for k in range(args.touchpoints)
        ]
        for start in range(0, len(history), 500):
            await stub.BatchRecordTouchpoints(
                pb.BatchRecordTouchpointsRequest(touchpoints=history[start : start + 500])
            )
        goals = [
            builders.goal_event(
                f"g-{contact}-{k}",
                contact,
                "ORDER_PLACED",
                builders.ts(now - timedelta(days=10) + timedelta(days=2 * k)),
            )
            for contact in contacts
            for k in range(args.goal_events)
        ]
        for start in range(0, len(goals), 500):
            await stub.BatchRecordGoalEvents(
                pb.BatchRecordGoalEventsRequest(goal_events=goals[start : start + 500])
            )

        on_time = await timed(
            stub, [touch(f"now-{c}", c, now - timedelta(seconds=1)) for c in contacts]
        )
        late = await timed(
            stub, [touch(f"late-{c}", c, now - timedelta(days=12)) for c in contacts]
        )

    conn = await asyncpg.connect(url)
    try:
        per_contact = await conn.fetchrow(
            "select (select count(*) from touchpoints where contact_id = 'c0') as touchpoints,"
            " (select count(*) from goal_events where contact_id = 'c0') as goal_events,"
            " (select count(*) from enrollments where contact_id = 'c0') as enrollments"
        )
    finally:
        await conn.close()
    assert per_contact is not None
    on_time_ms = statistics.mean(on_time) * 1000
    late_ms = statistics.mean(late) * 1000
    print(f"contacts={args.contacts} history per contact: {dict(per_contact)}")
    print(f"on-time touchpoint (no re-decision): mean {on_time_ms:6.2f} ms")
    print(f"late touchpoint (re-decides):        mean {late_ms:6.2f} ms")
    print(f"late / on-time ratio:                {late_ms / on_time_ms:6.2f}")
    rows_read = sum(per_contact.values()) + args.goal_events * 2  # + stored outcomes, awards
    print(f"rows a late touchpoint reads: about {rows_read}; writes: changed outcomes and awards")


if __name__ == "__main__":
    asyncio.run(main())
