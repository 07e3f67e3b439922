"""Enrollments: contacts entering and leaving journeys, and reading who is in which."""

from __future__ import annotations

import asyncpg
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import db, domain, metrics, pagination, parse, render
from journey_conversions.calls import Call, rpc
from journey_conversions.servicer.base import ServicerBase, parse_required
from journey_conversions.store import ingest


class ParticipationRpcs(ServicerBase):
    @rpc
    async def EnterJourney(
        self, request: pb.EnterJourneyRequest, call: Call
    ) -> pb.EnterJourneyResponse:
        enrollment = parse_required("enrollment", request.enrollment, parse.enrollment, call.bounds)

        async def work(conn: asyncpg.Connection) -> domain.Enrollment:
            return await ingest.enter(conn, call.tenant_id, enrollment, call.horizon)

        stored = await db.transaction(self.pool, work)
        metrics.EVENTS.labels("enrollment", "accepted").inc()
        return pb.EnterJourneyResponse(enrollment=render.enrollment(stored))

    @rpc
    async def ExitJourney(
        self, request: pb.ExitJourneyRequest, call: Call
    ) -> pb.ExitJourneyResponse:
        checker = parse.Checker()
        checker.identifier("enrollment_id", request.enrollment_id)
        exit_time = checker.timestamp("exit_time", request, call.bounds)
        reason = checker.enum("exit_reason", domain.ExitReason, request.exit_reason)
        checker.raise_if_any()
        assert exit_time is not None and reason is not None

        async def work(conn: asyncpg.Connection) -> domain.Enrollment:
            return await ingest.exit_enrollment(
                conn, call.tenant_id, request.enrollment_id, exit_time, reason, call.horizon
            )

        stored = await db.transaction(self.pool, work)
        return pb.ExitJourneyResponse(enrollment=render.enrollment(stored))

    @rpc
    async def GetEnrollment(
        self, request: pb.GetEnrollmentRequest, call: Call
    ) -> pb.GetEnrollmentResponse:
        found = await self._get(
            call,
            "enrollment_id",
            request.enrollment_id,
            ingest.get_enrollment,
            ingest.enrollment_not_found,
        )
        return pb.GetEnrollmentResponse(enrollment=render.enrollment(found))

    @rpc
    async def ListEnrollments(
        self, request: pb.ListEnrollmentsRequest, call: Call
    ) -> pb.ListEnrollmentsResponse:
        checker = parse.Checker()
        checker.identifier("contact_id", request.contact_id)
        checker.identifier("journey_id", request.journey_id, required=False)
        active_at = checker.timestamp("active_time", request, None, required=False)
        size = parse.page_size(checker, request.page_size)
        checker.raise_if_any()
        (after,) = pagination.decode(request.page_token, 1)

        async def work(conn: asyncpg.Connection) -> list[domain.Enrollment]:
            return await ingest.list_enrollments(
                conn,
                call.tenant_id,
                request.contact_id,
                request.journey_id,
                active_at,
                after,
                size + 1,
            )

        found = await db.transaction(self.pool, work)
        token = pagination.encode(found[size - 1].enrollment_id) if len(found) > size else ""
        return pb.ListEnrollmentsResponse(
            enrollments=[render.enrollment(e) for e in found[:size]], next_page_token=token
        )
