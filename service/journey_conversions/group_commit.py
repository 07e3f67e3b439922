"""Group commit: concurrent unary writes of one kind and tenant share transactions.

A flood of single RecordTouchpoint, RecordGoalEvent or EnterJourney calls would otherwise cost a
transaction, and a commit that waits for the disk, each. Each call hands its parsed item to the
group of its kind and tenant and waits; the group writes the items waiting together, in one
transaction, through the same store function as the batch RPCs (which answers each item on its
own), and answers every call after COMMIT. So OK still means committed, and an item the store
refuses fails only its own call.

No call waits for a timer: a batch starts at once while fewer than `parallel` batches of its
group are being written (see PARALLEL); beyond that, items wait for the next free slot
and go together, so batches grow exactly as fast as the database falls behind. A batch that
fails as a whole for a reason other than the database being out of reach is written again one
item per transaction, so that an item the store could not answer for on its own still fails
only its own call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import asyncpg

from journey_conversions import db, metrics
from journey_conversions.errors import Unavailable

Item = TypeVar("Item")
Result = TypeVar("Result")

# Writes items of one tenant in the caller's transaction, one result per item, in order; the
# datetime is the re-decision horizon (clock.TimePolicy.horizon).
BatchWriter = Callable[
    [asyncpg.Connection, str, Sequence[Item], datetime], Awaitable[Sequence[Result]]
]

MAX_ITEMS = 500  # the batch RPCs' limit: the store functions are tuned for it
# Batches of one group written at once (each holds a pooled connection). One: the calls that
# arrive while a batch is being written wait and go together in the next, so each batch
# carries more items for the same fixed cost (BEGIN, the statements, COMMIT: a round trip each,
# every one a costly send and wake-up on this machine), and the cores the server shares with
# Postgres do not go to batches that mostly wait for each other. Measured, RecordTouchpoint
# at 16 and 64 in flight: 4 at once 303 and 469 calls/s, 1 at once 559 and 668 (same machine,
# same hour); EnterJourney 266 against 353.
PARALLEL = 1
# Goal events: two. Their batch costs little per batch and much per item (each contact's
# re-decision in Python, then its history read and its enrollments' outcomes written in
# Postgres), so one at a time left Python waiting on Postgres and the other way round: at 500
# goal events/s on the 1M tenant it fell behind (343 to 500/s achieved, p50 45 ms to 1.1 s)
# with the two cores a quarter idle. Two at once overlap one batch's SQL with the other's
# Python: 441 to 500/s, p50 37 ms to 0.9 s (4 runs each, alternating). More than two: a batch
# that awards holds its tenant's outbox head (store/outbox.py) until COMMIT, and 4 at once
# saturated sooner (stop 13).
PARALLEL_BY_KIND = {"goal_event": 2}


@dataclass
class _Waiting(Generic[Item, Result]):
    item: Item
    horizon: datetime
    answer: asyncio.Future[Result]


@dataclass
class _Group(Generic[Item, Result]):
    """The items of one kind and tenant waiting for a batch, and the batches being written."""

    write: BatchWriter[Item, Result]
    waiting: list[_Waiting[Item, Result]] = field(default_factory=list)
    writing: int = 0


class GroupCommit:
    """The groups of a server: one per (kind, tenant) with calls in flight."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        max_items: int = MAX_ITEMS,
        parallel: int = PARALLEL,
        parallel_by_kind: Mapping[str, int] = PARALLEL_BY_KIND,
    ) -> None:
        self.pool = pool
        self.max_items = max_items
        self.parallel = parallel
        self.parallel_by_kind = parallel_by_kind
        self._groups: dict[tuple[str, str], _Group[Any, Any]] = {}
        self._batches: set[asyncio.Task[None]] = set()

    async def write(
        self,
        kind: str,
        tenant_id: str,
        item: Item,
        horizon: datetime,
        write: BatchWriter[Item, Result],
    ) -> Result:
        """`item`'s result from `write`, after the transaction that wrote it committed.
        `kind` names `write`: every call of one kind passes the same function."""
        key = (kind, tenant_id)
        group: _Group[Item, Result] = self._groups.setdefault(key, _Group(write))
        answer: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        group.waiting.append(_Waiting(item, horizon, answer))
        self._start_batches(key, group)
        # The batch runs in its own task: a caller that gives up does not cancel the others'.
        return await asyncio.shield(answer)

    def _start_batches(self, key: tuple[str, str], group: _Group[Any, Any]) -> None:
        parallel = self.parallel_by_kind.get(key[0], self.parallel)
        while group.waiting and group.writing < parallel:
            batch = group.waiting[: self.max_items]
            del group.waiting[: self.max_items]
            group.writing += 1
            task = asyncio.create_task(self._write_batch(key, group, batch))
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _write_batch(
        self, key: tuple[str, str], group: _Group[Item, Result], batch: list[_Waiting[Item, Result]]
    ) -> None:
        try:
            metrics.GROUP_COMMIT_ITEMS.labels(key[0]).observe(len(batch))
            try:
                await self._answer(key[1], group.write, batch)
            except Exception as error:
                if len(batch) == 1 or isinstance(error, Unavailable | asyncio.CancelledError):
                    raise
                # Something in the batch broke the whole transaction: each item on its own.
                for waiting in batch:
                    await self._answer_alone(key[1], group.write, waiting)
        except BaseException as error:
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(error)
            if not isinstance(error, Exception):
                raise
        finally:
            group.writing -= 1
            if group.waiting:
                self._start_batches(key, group)
            elif not group.writing:
                self._groups.pop(key, None)

    async def _answer(
        self, tenant_id: str, write: BatchWriter[Item, Result], batch: list[_Waiting[Item, Result]]
    ) -> None:
        # The earliest horizon of the batch: an event final for one call is final for all
        # (the calls arrived within one batch's write of each other).
        horizon = min(w.horizon for w in batch)
        items = [w.item for w in batch]

        async def work(conn: asyncpg.Connection) -> Sequence[Result]:
            return await write(conn, tenant_id, items, horizon)

        results = await db.transaction(self.pool, work)
        for waiting, result in zip(batch, results, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(result)

    async def _answer_alone(
        self, tenant_id: str, write: BatchWriter[Item, Result], waiting: _Waiting[Item, Result]
    ) -> None:
        try:
            await self._answer(tenant_id, write, [waiting])
        except Exception as error:
            if not waiting.answer.done():
                waiting.answer.set_exception(error)

    async def drain(self) -> None:
        """Waits for the batches being written (at shutdown, before the pool closes)."""
        while self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)
