"""The state every resource's RPCs share, and the helpers more than one of them uses."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

import asyncpg
from google.protobuf.message import Message
from journeys.conversions.v1 import events_pb2

from journey_conversions import db, metrics, parse, render
from journey_conversions.admission import DEFAULT_LIMITS, Admission
from journey_conversions.auth import Authenticator
from journey_conversions.calls import Call, HasCallSettings
from journey_conversions.clock import Bounds, TimePolicy
from journey_conversions.errors import InvalidArgument, ServiceError, under
from journey_conversions.group_commit import GroupCommit
from journey_conversions.notifier import Notifier
from journey_conversions.store import ingest, requests

Resp = TypeVar("Resp", bound=Message)
_T = TypeVar("_T")
_M = TypeVar("_M", bound=Message)
_Written = TypeVar("_Written")
# A store function writing many items of one kind in the caller's transaction, one result per
# item: store.ingest.record_touchpoints, record_goal_events, enter_enrollments, exit_enrollments.
ItemWriter = Callable[
    [asyncpg.Connection, str, Sequence[_Written], datetime], Awaitable[list[ingest.ItemResult]]
]


def count_events(kind: str, results: Sequence[ingest.ItemResult]) -> None:
    """jc_events_total: the items a write took, by kind and result."""
    for status, count in Counter(r.status for r in results).items():
        metrics.EVENTS.labels(kind, status.name.lower()).inc(count)


def parse_required(
    field: str,
    value: _M,
    parse_item: Callable[[parse.Checker, _M, Bounds], _T | None],
    bounds: Bounds,
) -> _T:
    """The one item a write carries, parsed; INVALID_ARGUMENT under `field` if it is wrong."""
    checker = parse.Checker(field)
    parsed = parse_item(checker, value, bounds)
    checker.raise_if_any()
    assert parsed is not None
    return parsed


@dataclass(frozen=True, slots=True)
class BatchKind(Generic[_M, _Written]):
    """One kind of batch write, as its Batch RPC and StreamIngest messages both take it."""

    kind: str  # jc_events_total's kind
    field: str  # the request's repeated field: item violations are named `field[index].name`
    key: Callable[[_M], str]  # an item's idempotency key, its ItemResult.event_id
    keyspace: str  # where keys name the same thing: entries and exits share "enrollment"
    parse_item: Callable[[parse.Checker, _M, Bounds], _Written | None]
    write: ItemWriter[_Written]


class ServicerBase(HasCallSettings):
    """The pool, time policy, authenticator, notifier, group commit and stopping event of the
    servicer."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        time_policy: TimePolicy,
        authenticator: Authenticator,
        notifier: Notifier,
        admission: Admission | None = None,
    ) -> None:
        self.pool = pool
        self.time_policy = time_policy
        self.authenticator = authenticator
        self.admission = admission if admission is not None else Admission(DEFAULT_LIMITS)
        self.notifier = notifier
        self.group_commit = GroupCommit(pool)
        self.stopping = asyncio.Event()

    async def _answer_batch(
        self, call: Call, batch: BatchKind[_M, _Written], items: Sequence[_M]
    ) -> list[events_pb2.ItemResult]:
        """What the Batch RPC of `batch` answers: each item parsed on its own (its violations
        named `field[index].name`), the valid ones written together in one transaction (one
        result each, in order), and one ItemResult per item in request order: a bad item does
        not sink the batch. An empty or oversized batch is INVALID_ARGUMENT."""
        checker = parse.Checker()
        checker.batch_size(batch.field, len(items))
        checker.raise_if_any()
        results: dict[int, ingest.ItemResult] = {}
        valid: list[tuple[int, _Written]] = []
        for index, item in enumerate(items):
            item_checker = parse.Checker(f"{batch.field}[{index}]")
            parsed = batch.parse_item(item_checker, item, call.bounds)
            if parsed is None:
                rejected = InvalidArgument(item_checker.violations)
                results[index] = ingest.ItemResult(ingest.ItemStatus.REJECTED, rejected)
            else:
                valid.append((index, parsed))
        if valid:
            written = await self._write_items(call, batch.kind, [v for _, v in valid], batch.write)
            for (index, _), result in zip(valid, written, strict=True):
                if result.error is None:
                    results[index] = result
                else:
                    error = under(f"{batch.field}[{index}]", result.error)
                    results[index] = ingest.ItemResult(result.status, error)
        return [render.item_result(i, batch.key(item), results[i]) for i, item in enumerate(items)]

    async def _write_items(
        self, call: Call, kind: str, items: Sequence[_Written], write: ItemWriter[_Written]
    ) -> list[ingest.ItemResult]:
        """Writes parsed items in one transaction; one result per item, counted by kind."""

        async def work(conn: asyncpg.Connection) -> list[ingest.ItemResult]:
            return await write(conn, call.tenant_id, items, call.horizon)

        results = await db.transaction(self.pool, work)
        count_events(kind, results)
        return results

    async def _idempotent(
        self,
        call: Call,
        method: str,
        key: str,
        request: Message,
        response_type: type[Resp],
        work: Callable[[asyncpg.Connection], Awaitable[Resp]],
    ) -> Resp:
        """Runs `work` in one transaction; a repeated key with the same payload gets the first
        response instead."""

        async def once(conn: asyncpg.Connection) -> Resp:
            payload = request.SerializeToString(deterministic=True)
            prior = await requests.claim(conn, call.tenant_id, method, key, payload)
            if prior is not None:
                return response_type.FromString(prior)
            response = await work(conn)
            await requests.finish(
                conn, call.tenant_id, method, key, response.SerializeToString(deterministic=True)
            )
            return response

        return await db.transaction(self.pool, once)

    async def _get(
        self,
        call: Call,
        field: str,
        key: str,
        load: Callable[[asyncpg.Connection, str, str], Awaitable[_T | None]],
        not_found: Callable[[str], ServiceError],
    ) -> _T:
        """What `load` finds for the request's identifier `field`, or `not_found`."""
        checker = parse.Checker()
        checker.identifier(field, key)
        checker.raise_if_any()

        async def work(conn: asyncpg.Connection) -> _T | None:
            return await load(conn, call.tenant_id, key)

        found = await db.transaction(self.pool, work)
        if found is None:
            raise not_found(key)
        return found
