"""The gRPC servicer: protobuf in, domain values through the store, protobuf out.

Each method parses and validates its request (parse), runs one transaction (store), and
renders the result (render). Errors travel as ServiceError and become statuses in calls.rpc.
"""

from __future__ import annotations

import asyncio
import difflib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg
from google.protobuf.message import Message
from journeys.conversions.v1 import events_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import db, domain, metrics, pagination, parse, render
from journey_conversions.calls import Call, HasCallSettings, rpc, stream_rpc
from journey_conversions.clock import Bounds, TimePolicy
from journey_conversions.errors import AlreadyExists, InvalidArgument, Unavailable, under
from journey_conversions.notifier import Notifier
from journey_conversions.store import (
    catalog,
    decisions,
    ingest,
    outbox,
    queries,
    reports,
    requests,
    steps,
)

Resp = TypeVar("Resp", bound=Message)
_Item = TypeVar("_Item", domain.Touchpoint, domain.GoalEvent)
_Message = TypeVar("_Message", events_pb2.Touchpoint, events_pb2.GoalEvent)
_Recorder = Callable[
    [asyncpg.Connection, str, Sequence[_Item], datetime], Awaitable[list[ingest.ItemResult]]
]
_STREAM_BATCH = 500
_NEAR_DUPLICATE_RATIO = 0.8


class JourneyConversionsServicer(
    service_pb2_grpc.JourneyConversionsServiceServicer, HasCallSettings
):
    def __init__(
        self, pool: asyncpg.Pool, time_policy: TimePolicy, default_tenant: str, notifier: Notifier
    ) -> None:
        self.pool = pool
        self.time_policy = time_policy
        self.default_tenant = default_tenant
        self.notifier = notifier
        self.stopping = asyncio.Event()

    async def _idempotent(
        self,
        conn: asyncpg.Connection,
        call: Call,
        method: str,
        key: str,
        request: Message,
        response_type: type[Resp],
        work: Callable[[], Awaitable[Resp]],
    ) -> Resp:
        """Returns the first response to a repeated key with the same payload."""
        payload = request.SerializeToString(deterministic=True)
        prior = await requests.claim(conn, call.tenant_id, method, key, payload)
        if prior is not None:
            return response_type.FromString(prior)
        response = await work()
        await requests.finish(
            conn, call.tenant_id, method, key, response.SerializeToString(deterministic=True)
        )
        return response

    # --- journeys -------------------------------------------------------------------------

    @rpc
    async def DefineJourney(
        self, request: pb.DefineJourneyRequest, call: Call
    ) -> pb.DefineJourneyResponse:
        checker = parse.Checker()
        checker.identifier("request_id", request.request_id)
        if not request.HasField("journey"):
            checker.fail("journey", "is required")
            checker.raise_if_any()
        nested = parse.Checker("journey")
        value = request.journey
        nested.identifier("journey_id", value.journey_id)
        nested.text("display_name", value.display_name)
        if value.purpose:
            nested.enum("purpose", domain.Purpose, value.purpose)
        window = parse.window(nested, value)
        versions = parse.versions(nested, value.versions)
        effective = checker.timestamp("goal_effective_time", request, call.bounds, required=False)
        checker.violations.extend(nested.violations)
        checker.raise_if_any()

        async def work(conn: asyncpg.Connection) -> pb.DefineJourneyResponse:
            async def define() -> pb.DefineJourneyResponse:
                current = await catalog.load_journey(conn, call.tenant_id, value.journey_id)
                messages = current.messages() if current else {}
                messages.update({m.message_id: m.channel for v in versions for m in v.messages})
                goal_checker = parse.Checker("journey.goal")
                goal = (
                    parse.criterion(goal_checker, value.goal, messages)
                    if value.HasField("goal")
                    else None
                )
                goal_checker.raise_if_any()
                journey = domain.Journey(
                    journey_id=value.journey_id,
                    display_name=value.display_name,
                    purpose=domain.Purpose(value.purpose),
                    window=window,
                    exclude_machine_opens=value.exclude_machine_opens,
                    versions=tuple(versions),
                    goal_history=(domain.CriterionChange(None, goal),) if goal else (),
                )
                change = await catalog.save_journey(
                    conn, call.tenant_id, journey, effective or call.now, call.horizon
                )
                if change.redecide_since is not None:
                    contacts = await decisions.contacts_with_goal_events(
                        conn, call.tenant_id, value.journey_id, change.redecide_since
                    )
                    await decisions.lock_and_redecide(conn, call.tenant_id, contacts, call.horizon)
                return pb.DefineJourneyResponse(journey=render.journey(change.journey))

            return await self._idempotent(
                conn,
                call,
                "DefineJourney",
                request.request_id,
                request,
                pb.DefineJourneyResponse,
                define,
            )

        return await db.transaction(self.pool, work)

    @rpc
    async def GetJourney(self, request: pb.GetJourneyRequest, call: Call) -> pb.GetJourneyResponse:
        checker = parse.Checker()
        checker.identifier("journey_id", request.journey_id)
        checker.raise_if_any()

        async def work(conn: asyncpg.Connection) -> domain.Journey | None:
            return await catalog.load_journey(conn, call.tenant_id, request.journey_id)

        journey = await db.transaction(self.pool, work)
        if journey is None:
            raise catalog.journey_not_found(request.journey_id)
        return pb.GetJourneyResponse(journey=render.journey(journey))

    @rpc
    async def ListJourneys(
        self, request: pb.ListJourneysRequest, call: Call
    ) -> pb.ListJourneysResponse:
        checker = parse.Checker()
        size = parse.page_size(checker, request.page_size)
        checker.raise_if_any()
        (after,) = pagination.decode(request.page_token, 1)

        async def work(conn: asyncpg.Connection) -> list[domain.Journey]:
            return await catalog.list_journeys(conn, call.tenant_id, after, size + 1)

        journeys = await db.transaction(self.pool, work)
        token = pagination.encode(journeys[size - 1].journey_id) if len(journeys) > size else ""
        return pb.ListJourneysResponse(
            journeys=[render.journey(j) for j in journeys[:size]], next_page_token=token
        )

    # --- named conversions ----------------------------------------------------------------

    @rpc
    async def DefineConversion(
        self, request: pb.DefineConversionRequest, call: Call
    ) -> pb.DefineConversionResponse:
        checker = parse.Checker()
        checker.identifier("request_id", request.request_id)
        if not request.HasField("conversion"):
            checker.fail("conversion", "is required")
        checker.raise_if_any()
        value = request.conversion

        async def work(conn: asyncpg.Connection) -> pb.DefineConversionResponse:
            async def define() -> pb.DefineConversionResponse:
                # The row lock serializes definitions of one journey's conversions.
                exists = await catalog.lock_journey(conn, call.tenant_id, value.journey_id)
                journey = await catalog.load_journey(conn, call.tenant_id, value.journey_id)
                nested = parse.Checker("conversion")
                name, money, trigger = parse.conversion(
                    nested, value, journey.messages() if journey else {}
                )
                nested.raise_if_any()
                if not exists or journey is None:
                    raise catalog.journey_not_found(value.journey_id)
                key = parse.conversion_name_key(name)
                others_and_self = await catalog.list_conversions(
                    conn, call.tenant_id, journey.journey_id
                )
                others = [c for c in others_and_self if c.conversion_id != value.conversion_id]
                warnings = []
                for other in others:
                    other_key = parse.conversion_name_key(other.name)
                    if other_key == key:
                        raise AlreadyExists(
                            "CONVERSION_NAME_TAKEN",
                            f"conversion {other.conversion_id!r} of this journey is already"
                            f" named {other.name!r}",
                        )
                    ratio = difflib.SequenceMatcher(None, key, other_key).ratio()
                    if ratio >= _NEAR_DUPLICATE_RATIO or key in other_key or other_key in key:
                        warnings.append(
                            f"name {name!r} is close to {other.name!r} (conversion"
                            f" {other.conversion_id!r}); duplicate conversions make reports"
                            " harder to read"
                        )
                before = {c.conversion_id: c for c in others_and_self}.get(value.conversion_id)
                saved, trigger_changed = await catalog.save_conversion(
                    conn,
                    call.tenant_id,
                    domain.ConversionDefinition(
                        conversion_id=value.conversion_id,
                        journey_id=value.journey_id,
                        name=name,
                        value=money,
                        trigger=trigger,
                        award_on_goal=value.award_on_goal,
                    ),
                    key,
                    call.now,
                )
                contacts: set[str] = set()
                if before is not None and before.value != money:
                    # Open awards take the new value (UPDATED events); final ones keep theirs.
                    contacts.update(
                        await decisions.contacts_with_awards(
                            conn,
                            call.tenant_id,
                            value.journey_id,
                            value.conversion_id,
                            call.horizon,
                        )
                    )
                if trigger_changed:
                    # Goal events not yet final may now match (a first trigger applies from
                    # the start) or no longer match.
                    contacts.update(
                        await decisions.contacts_with_goal_events(
                            conn, call.tenant_id, value.journey_id, call.horizon
                        )
                    )
                await decisions.lock_and_redecide(conn, call.tenant_id, contacts, call.horizon)
                return pb.DefineConversionResponse(
                    conversion=render.conversion(saved), warnings=warnings
                )

            return await self._idempotent(
                conn,
                call,
                "DefineConversion",
                request.request_id,
                request,
                pb.DefineConversionResponse,
                define,
            )

        return await db.transaction(self.pool, work)

    @rpc
    async def ListConversions(
        self, request: pb.ListConversionsRequest, call: Call
    ) -> pb.ListConversionsResponse:
        checker = parse.Checker()
        checker.identifier("journey_id", request.journey_id)
        size = parse.page_size(checker, request.page_size)
        checker.raise_if_any()
        (after,) = pagination.decode(request.page_token, 1)

        async def work(conn: asyncpg.Connection) -> list[domain.ConversionDefinition]:
            if await catalog.load_journey(conn, call.tenant_id, request.journey_id) is None:
                raise catalog.journey_not_found(request.journey_id)
            return await catalog.list_conversions(
                conn, call.tenant_id, request.journey_id, after, size + 1
            )

        found = await db.transaction(self.pool, work)
        token = pagination.encode(found[size - 1].conversion_id) if len(found) > size else ""
        return pb.ListConversionsResponse(
            conversions=[render.conversion(c) for c in found[:size]], next_page_token=token
        )

    # --- enrollments ----------------------------------------------------------------------

    @rpc
    async def EnterJourney(
        self, request: pb.EnterJourneyRequest, call: Call
    ) -> pb.EnterJourneyResponse:
        checker = parse.Checker("enrollment")
        enrollment = parse.enrollment(checker, request.enrollment, call.bounds)
        checker.raise_if_any()
        assert enrollment is not None

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
        checker = parse.Checker()
        checker.identifier("enrollment_id", request.enrollment_id)
        checker.raise_if_any()

        async def work(conn: asyncpg.Connection) -> domain.Enrollment | None:
            return await ingest.get_enrollment(conn, call.tenant_id, request.enrollment_id)

        found = await db.transaction(self.pool, work)
        if found is None:
            raise ingest.enrollment_not_found(request.enrollment_id)
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

    # --- touchpoints and goal events ------------------------------------------------------

    async def _record(
        self, call: Call, kind: str, items: list[_Item], record: _Recorder[_Item]
    ) -> list[ingest.ItemResult]:
        """Writes parsed items in one transaction; one result per item."""

        async def work(conn: asyncpg.Connection) -> list[ingest.ItemResult]:
            return await record(conn, call.tenant_id, items, call.horizon)

        results = await db.transaction(self.pool, work)
        for status, count in Counter(r.status for r in results).items():
            metrics.EVENTS.labels(kind, status.name.lower()).inc(count)
        return results

    async def _record_batch(
        self,
        call: Call,
        kind: str,
        field: str,
        items: Sequence[_Message],
        parse_item: Callable[[parse.Checker, _Message, Bounds], _Item | None],
        record: _Recorder[_Item],
    ) -> list[events_pb2.ItemResult]:
        """Parses each item on its own, writes the valid ones together, and answers for every
        item in request order: a bad item does not sink the batch."""
        checker = parse.Checker()
        checker.batch_size(field, len(items))
        checker.raise_if_any()
        results: dict[int, ingest.ItemResult] = {}
        valid: list[tuple[int, _Item]] = []
        for index, item in enumerate(items):
            item_checker = parse.Checker(f"{field}[{index}]")
            parsed = parse_item(item_checker, item, call.bounds)
            if parsed is None:
                results[index] = _rejected(item_checker)
            else:
                valid.append((index, parsed))
        if valid:
            written = await self._record(call, kind, [v for _, v in valid], record)
            for (index, _), result in zip(valid, written, strict=True):
                results[index] = _under(f"{field}[{index}]", result)
        return [render.item_result(i, item.event_id, results[i]) for i, item in enumerate(items)]

    @rpc
    async def RecordTouchpoint(
        self, request: pb.RecordTouchpointRequest, call: Call
    ) -> pb.RecordTouchpointResponse:
        checker = parse.Checker("touchpoint")
        touchpoint = parse.touchpoint(checker, request.touchpoint, call.bounds)
        checker.raise_if_any()
        assert touchpoint is not None
        (result,) = await self._record(call, "touchpoint", [touchpoint], ingest.record_touchpoints)
        if result.error is not None:
            raise under("touchpoint", result.error)
        return pb.RecordTouchpointResponse(touchpoint=render.touchpoint(touchpoint))

    @rpc
    async def BatchRecordTouchpoints(
        self, request: pb.BatchRecordTouchpointsRequest, call: Call
    ) -> pb.BatchRecordTouchpointsResponse:
        results = await self._record_batch(
            call,
            "touchpoint",
            "touchpoints",
            request.touchpoints,
            parse.touchpoint,
            ingest.record_touchpoints,
        )
        return pb.BatchRecordTouchpointsResponse(results=results)

    @rpc
    async def RecordGoalEvent(
        self, request: pb.RecordGoalEventRequest, call: Call
    ) -> pb.RecordGoalEventResponse:
        checker = parse.Checker("goal_event")
        event = parse.goal_event(checker, request.goal_event, call.bounds)
        checker.raise_if_any()
        assert event is not None
        (result,) = await self._record(call, "goal_event", [event], ingest.record_goal_events)
        if result.error is not None:
            raise under("goal_event", result.error)
        response = pb.RecordGoalEventResponse(goal_event=render.goal_event(event))

        async def read_outcome(conn: asyncpg.Connection) -> domain.Outcome | None:
            return await queries.stored_outcome(conn, call.tenant_id, event.event_id)

        outcome = await db.transaction(self.pool, read_outcome)
        if outcome is not None:
            response.outcome.CopyFrom(render.outcome(outcome))
        return response

    @rpc
    async def BatchRecordGoalEvents(
        self, request: pb.BatchRecordGoalEventsRequest, call: Call
    ) -> pb.BatchRecordGoalEventsResponse:
        results = await self._record_batch(
            call,
            "goal_event",
            "goal_events",
            request.goal_events,
            parse.goal_event,
            ingest.record_goal_events,
        )
        return pb.BatchRecordGoalEventsResponse(results=results)

    # --- steps ----------------------------------------------------------------------------

    @rpc
    async def MarkConversion(
        self, request: pb.MarkConversionRequest, call: Call
    ) -> pb.MarkConversionResponse:
        checker = parse.Checker()
        checker.identifier("event_id", request.event_id)
        checker.identifier("enrollment_id", request.enrollment_id)
        checker.identifier("conversion_id", request.conversion_id)
        checker.identifier("step_id", request.step_id, required=False)
        mark_time = checker.timestamp("mark_time", request, call.bounds)
        checker.raise_if_any()
        assert mark_time is not None
        mark = domain.StepMark(
            request.event_id,
            request.enrollment_id,
            request.conversion_id,
            request.step_id,
            mark_time,
            domain.AwardSource.CONVERT_STEP,
        )

        async def work(conn: asyncpg.Connection) -> pb.MarkConversionResponse:
            async def do() -> pb.MarkConversionResponse:
                award = await steps.mark_conversion(conn, call.tenant_id, mark, call.horizon)
                return pb.MarkConversionResponse(award=render.award(award))

            return await self._idempotent(
                conn,
                call,
                "MarkConversion",
                request.event_id,
                request,
                pb.MarkConversionResponse,
                do,
            )

        return await db.transaction(self.pool, work)

    @rpc
    async def EvaluateGoal(
        self, request: pb.EvaluateGoalRequest, call: Call
    ) -> pb.EvaluateGoalResponse:
        checker = parse.Checker()
        checker.identifier("event_id", request.event_id)
        checker.identifier("enrollment_id", request.enrollment_id)
        checker.identifier("step_id", request.step_id, required=False)
        evaluate_time = checker.timestamp("evaluate_time", request, call.bounds)
        checker.raise_if_any()
        assert evaluate_time is not None

        async def work(conn: asyncpg.Connection) -> pb.EvaluateGoalResponse:
            async def do() -> pb.EvaluateGoalResponse:
                result = await steps.evaluate_goal(
                    conn,
                    call.tenant_id,
                    request.event_id,
                    request.enrollment_id,
                    request.step_id,
                    evaluate_time,
                    call.horizon,
                )
                return pb.EvaluateGoalResponse(
                    goal_met=result.goal_met,
                    goal_event_id=result.goal_event_id,
                    credit=pb.GoalCredit.ValueType(result.credit),
                    credited_journey_id=result.credited_journey_id,
                    awards=[render.award(a) for a in result.awards],
                )

            return await self._idempotent(
                conn,
                call,
                "EvaluateGoal",
                request.event_id,
                request,
                pb.EvaluateGoalResponse,
                do,
            )

        return await db.transaction(self.pool, work)

    # --- reads ----------------------------------------------------------------------------

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

    @stream_rpc
    async def StreamConversionEvents(
        self, request: pb.StreamConversionEventsRequest, call: Call
    ) -> AsyncIterator[pb.StreamConversionEventsResponse]:
        checker = parse.Checker()
        if request.after_position < 0:
            checker.fail("after_position", "must be 0 or more")
        checker.raise_if_any()
        position = request.after_position

        async def read_next(conn: asyncpg.Connection) -> list[outbox.StoredEvent]:
            return await outbox.read_after(conn, call.tenant_id, position, _STREAM_BATCH)

        with self.notifier.subscribe(call.tenant_id) as subscription:
            while not self.stopping.is_set():
                subscription.rearm()
                try:
                    found = await db.transaction(self.pool, read_next)
                except Unavailable:
                    found = []  # the database is away: keep the stream, try again shortly
                for event in found:
                    yield pb.StreamConversionEventsResponse(event=render.conversion_event(event))
                    position = event.position
                if len(found) < _STREAM_BATCH:
                    await subscription.wait(self.stopping)

    @rpc
    async def GetJourneyReport(
        self, request: pb.GetJourneyReportRequest, call: Call
    ) -> pb.GetJourneyReportResponse:
        checker = parse.Checker()
        checker.identifier("journey_id", request.journey_id)
        if request.version < 0:
            checker.fail("version", "must be 0 (all versions) or more")
        start = checker.timestamp("start_time", request, None, required=False)
        end = checker.timestamp("end_time", request, None, required=False)
        start = start or datetime(1970, 1, 1, tzinfo=UTC)
        end = end or call.now
        if end <= start:
            checker.fail("end_time", "must be after start_time")
        checker.raise_if_any()

        async def work(conn: asyncpg.Connection) -> reports.Report:
            return await reports.journey_report(
                conn, call.tenant_id, request.journey_id, request.version, start, end
            )

        report = await db.transaction(self.pool, work)
        return pb.GetJourneyReportResponse(report=render.report(report))


def _under(prefix: str, result: ingest.ItemResult) -> ingest.ItemResult:
    if result.error is None:
        return result
    return ingest.ItemResult(result.status, under(prefix, result.error))


def _rejected(checker: parse.Checker) -> ingest.ItemResult:
    return ingest.ItemResult(ingest.ItemStatus.REJECTED, InvalidArgument(checker.violations))
