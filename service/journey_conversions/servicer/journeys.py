"""Journey and named-conversion definitions: define, get and list them."""

from __future__ import annotations

import difflib

import asyncpg
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import db, domain, pagination, parse, render
from journey_conversions.calls import Call, rpc
from journey_conversions.errors import AlreadyExists
from journey_conversions.servicer.base import ServicerBase
from journey_conversions.store import catalog, decisions

_NEAR_DUPLICATE_RATIO = 0.8


class JourneyRpcs(ServicerBase):
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

        async def define(conn: asyncpg.Connection) -> pb.DefineJourneyResponse:
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
            call, "DefineJourney", request.request_id, request, pb.DefineJourneyResponse, define
        )

    @rpc
    async def GetJourney(self, request: pb.GetJourneyRequest, call: Call) -> pb.GetJourneyResponse:
        journey = await self._get(
            call, "journey_id", request.journey_id, catalog.load_journey, catalog.journey_not_found
        )
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
        # Everything but the trigger's messages, before the journey is locked and read by its
        # id: an id Postgres cannot take (a NUL character) failed that read with INTERNAL.
        nested = parse.Checker("conversion")
        parse.conversion(nested, value, None)
        nested.raise_if_any()

        async def define(conn: asyncpg.Connection) -> pb.DefineConversionResponse:
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
            call,
            "DefineConversion",
            request.request_id,
            request,
            pb.DefineConversionResponse,
            define,
        )

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
