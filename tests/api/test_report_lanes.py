"""A report read on two connections at once (store/reports.py): the same figures as on one,
and the second connection sees exactly the first one's snapshot, not what commits between."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

import asyncpg
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import render_report
from journey_conversions.store import reports
from journey_conversions.store.report_query import ReportQuery
from tests.builders import ago, define_journey, enter, goal_event, message, touchpoint

if TYPE_CHECKING:
    from journey_conversions.server import App
    from tests.builders import Stub

TENANT = "default"  # the development server's tenant without x-tenant-id
QUERY = ReportQuery("welcome", 0, datetime(1970, 1, 1, tzinfo=UTC), datetime.now(UTC))


async def record_a_conversion(stub: Stub, n: int) -> None:
    await stub.EnterJourney(enter(f"e{n}", f"c{n}", "welcome", ago(days=3)))
    await stub.RecordTouchpoint(
        pb.RecordTouchpointRequest(
            touchpoint=touchpoint(f"t{n}", f"c{n}", "welcome", "email-1", ago(days=2))
        )
    )
    await stub.RecordGoalEvent(
        pb.RecordGoalEventRequest(
            goal_event=goal_event(f"g{n}", f"c{n}", "ORDER_PLACED", ago(days=1))
        )
    )


async def report_of(pool: asyncpg.Pool, helper: bool) -> bytes:
    async with pool.acquire() as pooled, pool.acquire() as second, pooled.transaction():
        conn = cast(asyncpg.Connection, pooled)
        found = await reports.journey_report(
            conn, TENANT, QUERY, cast(asyncpg.Connection, second) if helper else None
        )
    return render_report.report(found).SerializeToString(deterministic=True)


async def test_two_connections_give_the_figures_of_one(stub: Stub, app: App) -> None:
    await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
    for n in range(3):
        await record_a_conversion(stub, n)
    alone = await report_of(app.pool, helper=False)
    assert await report_of(app.pool, helper=True) == alone
    await record_a_conversion(stub, 3)
    assert await report_of(app.pool, helper=True) != alone


async def test_the_second_connection_reads_the_first_ones_snapshot(stub: Stub, app: App) -> None:
    await stub.DefineJourney(define_journey("welcome", [message("email-1")]))
    await record_a_conversion(stub, 0)
    before = await report_of(app.pool, helper=False)

    class WriteAfterExport:
        """The report's first connection; a conversion commits right after it exports its
        snapshot, before the second connection imports it."""

        def __init__(self, conn: asyncpg.Connection) -> None:
            self.conn = conn

        def __getattr__(self, name: str) -> object:
            return getattr(self.conn, name)

        async def fetchval(self, query: str, *args: object) -> object:
            found = await self.conn.fetchval(query, *args)
            if "pg_export_snapshot" in query:
                await record_a_conversion(stub, 1)
            return found

    async with app.pool.acquire() as conn, conn.transaction(), app.pool.acquire() as second:
        first = cast(asyncpg.Connection, WriteAfterExport(cast(asyncpg.Connection, conn)))
        during = await reports.journey_report(
            first, TENANT, QUERY, cast(asyncpg.Connection, second)
        )
    assert render_report.report(during).SerializeToString(deterministic=True) == before
    assert await report_of(app.pool, helper=True) != before
