"""The read side of conversions: journey reports, goal event explanations and awards."""

from __future__ import annotations

import enum
from datetime import UTC, datetime

import asyncpg
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import db, domain, pagination, parse, render, render_report
from journey_conversions.calls import Call, rpc
from journey_conversions.servicer.base import ServicerBase
from journey_conversions.store import catalog, queries, reports
from journey_conversions.store.report_query import ReportQuery

_DAWN = datetime(1970, 1, 1, tzinfo=UTC)


class ReportView(enum.IntEnum):
    """How much of a report to compute (unspecified: full)."""

    BASIC = 1
    FULL = 2  # the start of an unbounded report range


def report_query(request: pb.GetJourneyReportRequest, now: datetime) -> ReportQuery:
    """The report asked for; raises InvalidArgument with every field violation."""
    checker = parse.Checker()
    checker.identifier("journey_id", request.journey_id)
    if request.version < 0:
        checker.fail("version", "must be 0 (all versions) or more")
    if request.baseline_version < 0:
        checker.fail("baseline_version", "must be 0 (the lowest version with entries) or more")
    start = checker.timestamp("start_time", request, None, required=False) or _DAWN
    end = checker.timestamp("end_time", request, None, required=False) or now
    if end <= start:
        checker.fail("end_time", "must be after start_time")
    elif end > now + parse.MAX_REPORT_AHEAD:
        checker.fail("end_time", f"must be at most {parse.MAX_REPORT_AHEAD.days} days after now")
    zone = parse.time_zone(checker, request.time_zone)
    view = checker.enum("view", ReportView, request.view) if request.view else ReportView.FULL
    checker.raise_if_any()
    return ReportQuery(
        request.journey_id,
        request.version,
        start,
        end,
        request.baseline_version,
        zone,
        full=view != ReportView.BASIC,
    )


class ReportRpcs(ServicerBase):
    @rpc
    async def GetJourneyReport(
        self, request: pb.GetJourneyReportRequest, call: Call
    ) -> pb.GetJourneyReportResponse:
        query = report_query(request, call.now)

        async def work(conn: asyncpg.Connection) -> reports.Report:
            async with db.idle_connection(self.pool) as helper:
                return await reports.journey_report(conn, call.tenant_id, query, helper)

        report = await db.transaction(self.pool, work)
        return pb.GetJourneyReportResponse(report=render_report.report(report))

    @rpc
    async def ExplainGoalEvent(
        self, request: pb.ExplainGoalEventRequest, call: Call
    ) -> pb.ExplainGoalEventResponse:
        checker = parse.Checker()
        checker.identifier("event_id", request.event_id)
        checker.raise_if_any()

        async def work(conn: asyncpg.Connection) -> tuple[domain.GoalEvent, domain.Outcome]:
            return await queries.explain(conn, call.tenant_id, request.event_id)

        event, outcome = await db.transaction(self.pool, work)
        return pb.ExplainGoalEventResponse(explanation=render.explanation(event, outcome))

    @rpc
    async def ListConversionAwards(
        self, request: pb.ListConversionAwardsRequest, call: Call
    ) -> pb.ListConversionAwardsResponse:
        checker = parse.Checker()
        checker.identifier("journey_id", request.journey_id)
        checker.identifier("contact_id", request.contact_id, required=False)
        size = parse.page_size(checker, request.page_size)
        checker.raise_if_any()
        enrollment_id, conversion_id = pagination.decode(request.page_token, 2)

        async def work(conn: asyncpg.Connection) -> list[domain.Award]:
            if await catalog.load_journey(conn, call.tenant_id, request.journey_id) is None:
                raise catalog.journey_not_found(request.journey_id)
            return await queries.list_awards(
                conn,
                call.tenant_id,
                request.journey_id,
                request.contact_id,
                (enrollment_id, conversion_id),
                size + 1,
            )

        found = await db.transaction(self.pool, work)
        token = pagination.encode(*found[size - 1].key) if len(found) > size else ""
        return pb.ListConversionAwardsResponse(
            awards=[render.award(a) for a in found[:size]], next_page_token=token
        )
