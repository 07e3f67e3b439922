"""pipeline.in_order, on its own: answers in request order whatever order the work finishes in,
never more than `depth` requests read and not yet answered, errors in their turn, and nothing
left running once it ends. No timing: the work and the consumer move when the test says."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from prometheus_client import CollectorRegistry, Gauge

from journey_conversions.pipeline import in_order

DEPTH = 4


def gauge() -> Gauge:
    return Gauge("unanswered", "requests read and not yet answered", registry=CollectorRegistry())


def value(of: Gauge) -> float:
    (metric,) = of.collect()
    return metric.samples[0].value


class Source:
    """Requests 0, 1, 2... (then an error, or the end); records how many answers the
    consumer had taken when each one was read."""

    def __init__(self, count: int, error: Exception | None = None) -> None:
        self.count = count
        self.error = error
        self.answered = 0
        self.answered_at_read: list[int] = []

    async def requests(self) -> AsyncIterator[int]:
        for index in range(self.count):
            self.answered_at_read.append(self.answered)
            yield index
        if self.error is not None:
            raise self.error


async def settle() -> None:
    """Lets every task that can run, run (no I/O or timer is involved)."""
    for _ in range(50):
        await asyncio.sleep(0)


async def consume(
    source: Source, start: Callable[[int], Awaitable[str]], unanswered: Gauge
) -> list[str]:
    answers = []
    async for answer in in_order(source.requests(), DEPTH, start, unanswered):
        answers.append(answer)
        source.answered += 1
        await settle()  # a slow consumer: everything else runs before it takes the next
    return answers


class TestOrder:
    """Answers come in request order, however the work interleaves."""

    async def test_work_finishing_in_reverse_is_answered_in_order(self) -> None:
        gates = [asyncio.Event() for _ in range(DEPTH)]

        async def start(index: int) -> str:
            await gates[index].wait()
            return f"answer-{index}"

        task = asyncio.create_task(consume(Source(DEPTH), start, gauge()))
        await settle()
        for gate in reversed(gates):
            gate.set()
            await settle()
        assert await task == [f"answer-{i}" for i in range(DEPTH)]


class TestFlowControl:
    """No request is read while `depth` are unanswered."""

    async def test_a_slow_consumer_holds_reading_to_depth_ahead(self) -> None:
        source = Source(40)

        async def start(index: int) -> str:
            return str(index)

        assert await consume(source, start, gauge()) == [str(i) for i in range(40)]
        ahead = [read - answered for read, answered in enumerate(source.answered_at_read)]
        assert max(ahead) == DEPTH - 1  # reading overlaps work, and never by more than depth

    async def test_stalled_work_stops_the_reading(self) -> None:
        source = Source(40)
        started: list[int] = []
        release = asyncio.Event()
        unanswered = gauge()

        async def start(index: int) -> str:
            started.append(index)
            await release.wait()
            return str(index)

        task = asyncio.create_task(consume(source, start, unanswered))
        await settle()
        assert started == list(range(DEPTH))
        assert len(source.answered_at_read) == DEPTH
        assert value(unanswered) == DEPTH
        release.set()
        assert await task == [str(i) for i in range(40)]
        assert value(unanswered) == 0


class TestErrors:
    """An error ends the answers in its turn; whatever is still running is cancelled."""

    async def test_a_failed_work_ends_after_the_earlier_answers(self) -> None:
        running: set[int] = set()
        unanswered = gauge()

        async def start(index: int) -> str:
            running.add(index)
            try:
                await asyncio.sleep(0)
                if index == 1:
                    raise LookupError("message 1")
                if index > 1:
                    await asyncio.Event().wait()
                return str(index)
            finally:
                running.discard(index)

        answers: list[str] = []
        with pytest.raises(LookupError, match="message 1"):
            async for answer in in_order(Source(10).requests(), DEPTH, start, unanswered):
                answers.append(answer)
                await settle()
        assert answers == ["0"]
        assert running == set()  # the messages read after it were cancelled
        assert value(unanswered) == 0

    async def test_a_failed_read_ends_after_every_request_read_is_answered(self) -> None:
        async def start(index: int) -> str:
            await asyncio.sleep(0)
            return str(index)

        answers: list[str] = []
        with pytest.raises(EOFError, match="broken"):
            async for answer in in_order(
                Source(6, EOFError("broken")).requests(), DEPTH, start, gauge()
            ):
                answers.append(answer)
        assert answers == [str(i) for i in range(6)]

    async def test_closing_early_cancels_the_work_still_running(self) -> None:
        running: set[int] = set()
        unanswered = gauge()

        async def start(index: int) -> str:
            running.add(index)
            try:
                if index > 0:
                    await asyncio.Event().wait()
                return str(index)
            finally:
                running.discard(index)

        answers = in_order(Source(10).requests(), DEPTH, start, unanswered)
        assert await anext(answers) == "0"
        await settle()
        assert running == {1, 2, 3}  # 0 is answered, but its slot is free only when asked again
        await answers.aclose()
        assert running == set()
        assert value(unanswered) == 0
