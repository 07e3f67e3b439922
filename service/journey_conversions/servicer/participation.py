"""Enrollments: contacts entering and leaving journeys, and reading who is in which."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

import asyncpg
from journeys.conversions.v1 import events_pb2
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import db, domain, pagination, parse, render
from journey_conversions.calls import Call, rpc
from journey_conversions.group_commit import BatchWriter
from journey_conversions.servicer.base import (
    BatchKind,
    ItemWriter,
    ServicerBase,
    count_events,
    parse_required,
)
from journey_conversions.store import ingest

_Participation = TypeVar("_Participation", domain.Enrollment, domain.EnrollmentExit)


def parse_exit(
    checker: parse.Checker,
    value: pb.ExitJourneyRequest | events_pb2.EnrollmentExit,
    bounds: parse.TimeBounds,
) -> domain.EnrollmentExit | None:
    """The exit of ExitJourney, or of an item of BatchExitJourney."""
    checker.identifier("enrollment_id", value.enrollment_id)
    exit_time = checker.timestamp("exit_time", value, bounds)
    reason = checker.enum("exit_reason", domain.ExitReason, value.exit_reason)
    if checker.violations or exit_time is None or reason is None:
        return None
    return domain.EnrollmentExit(value.enrollment_id, exit_time, reason)


def _enrollment_id(item: events_pb2.Enrollment | events_pb2.EnrollmentExit) -> str:
    return item.enrollment_id


ENROLLMENTS: BatchKind[events_pb2.Enrollment, domain.Enrollment] = BatchKind(
    kind="enrollment",
    field="enrollments",
    key=_enrollment_id,
    keyspace="enrollment",
    parse_item=parse.enrollment,
    write=ingest.enter_enrollments,
)
EXITS: BatchKind[events_pb2.EnrollmentExit, domain.EnrollmentExit] = BatchKind(
    kind="exit",
    field="exits",
    key=_enrollment_id,
    keyspace="enrollment",  # an exit names the enrollment its entry made
    parse_item=parse_exit,
    write=ingest.exit_enrollments,
)

Stored = tuple[ingest.ItemResult, domain.Enrollment | None]


def _and_stored(write: ItemWriter[_Participation]) -> BatchWriter[_Participation, Stored]:
    """`write`, each result with its enrollment as stored, read in the same transaction."""

    async def write_and_read(
        conn: asyncpg.Connection,
        tenant_id: str,
        items: Sequence[_Participation],
        horizon: datetime,
    ) -> list[Stored]:
        results = await write(conn, tenant_id, items, horizon)
        ids = [i.enrollment_id for i, r in zip(items, results, strict=True) if r.error is None]
        stored = await ingest.get_enrollments(conn, tenant_id, ids)
        return [
            (r, None if r.error else stored[i.enrollment_id])
            for i, r in zip(items, results, strict=True)
        ]

    return write_and_read


# One writer per kind, as group commit wants.
_ENTER = _and_stored(ingest.enter_enrollments)
_EXIT = _and_stored(ingest.exit_enrollments)


class ParticipationRpcs(ServicerBase):
    """EnterJourney and ExitJourney are batches of one, gathered with concurrent calls of their
    kind by group commit: they share the batch RPCs' store functions (store.ingest.
    enter_enrollments and exit_enrollments), so an item of a batch gets exactly what the unary
    call would have answered."""

    async def _one(
        self,
        call: Call,
        kind: str,
        item: _Participation,
        write: BatchWriter[_Participation, Stored],
    ) -> events_pb2.Enrollment:
        """The unary call: its item's rejection is the call's error; answered with the
        enrollment as stored."""
        result, stored = await self.group_commit.write(
            kind, call.tenant_id, item, call.horizon, write
        )
        count_events(kind, [result])
        if result.error is not None:
            raise result.error
        assert stored is not None
        return render.enrollment(stored)

    @rpc
    async def EnterJourney(
        self, request: pb.EnterJourneyRequest, call: Call
    ) -> pb.EnterJourneyResponse:
        enrollment = parse_required("enrollment", request.enrollment, parse.enrollment, call.bounds)
        stored = await self._one(call, "enrollment", enrollment, _ENTER)
        return pb.EnterJourneyResponse(enrollment=stored)

    @rpc
    async def BatchEnterJourney(
        self, request: pb.BatchEnterJourneyRequest, call: Call
    ) -> pb.BatchEnterJourneyResponse:
        results = await self._answer_batch(call, ENROLLMENTS, request.enrollments)
        return pb.BatchEnterJourneyResponse(results=results)

    @rpc
    async def ExitJourney(
        self, request: pb.ExitJourneyRequest, call: Call
    ) -> pb.ExitJourneyResponse:
        checker = parse.Checker()
        exit_ = parse_exit(checker, request, call.bounds)
        checker.raise_if_any()
        assert exit_ is not None
        stored = await self._one(call, "exit", exit_, _EXIT)
        return pb.ExitJourneyResponse(enrollment=stored)

    @rpc
    async def BatchExitJourney(
        self, request: pb.BatchExitJourneyRequest, call: Call
    ) -> pb.BatchExitJourneyResponse:
        results = await self._answer_batch(call, EXITS, request.exits)
        return pb.BatchExitJourneyResponse(results=results)

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
