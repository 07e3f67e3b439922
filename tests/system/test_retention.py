"""Retention (`journey-conversions retention`, store/retention.py): the months of touchpoints and
goal events older than the allowed lateness plus the longest window are dropped, whole
partitions at a time, with their event ids; reports keep their figures; what needs the dropped
rows (a rebuild, history older than them) is refused; live events keep their idempotency.

The old months come from a history import two years back, through the real CLI, on a database
a real server serves; reports are asked through the generated stub before and after."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import timestamp_pb2
from journeys.conversions.v1 import journey_pb2, report_pb2
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import cli
from tests.builders import ago, goal_event
from tests.system.test_cli_import import (
    NOW,
    define_journey,
    enrollment,
    fetch,
    order,
    run_import,
    touch,
    write_ndjson,
)

if TYPE_CHECKING:
    from tests.builders import Stub

ACME = (("x-tenant-id", "acme"),)
DAYS_AGO_OLD = 700  # two years back: wholly before the cutoff (30 + 1 + 30 days)


def midnight_days_ago(days: int) -> timestamp_pb2.Timestamp:
    day = (NOW - timedelta(days=days)).replace(hour=0, minute=0, second=0)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(day)
    return stamp


async def report(
    stub: Stub,
    start: timestamp_pb2.Timestamp | None = None,
    end: timestamp_pb2.Timestamp | None = None,
) -> report_pb2.JourneyReport:
    request = pb.GetJourneyReportRequest(journey_id="j", start_time=start, end_time=end)
    return (await stub.GetJourneyReport(request, metadata=ACME)).report


async def evaluate(stub: Stub, event_id: str) -> pb.EvaluateGoalResponse:
    request = pb.EvaluateGoalRequest(
        event_id=event_id, enrollment_id="e1", step_id="s1", evaluate_time=ago(hours=1)
    )
    return await stub.EvaluateGoal(request, metadata=ACME)


async def run_retention(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> dict[str, Any]:
    capsys.readouterr()  # the server's log lines so far
    code = await asyncio.to_thread(cli.main, ["retention", "--database-url", url, "--json", *args])
    out, _ = capsys.readouterr()
    assert code == 0
    described: dict[str, Any] = json.loads(out.splitlines()[-1])
    return described


async def import_rows(
    capsys: pytest.CaptureFixture[str], url: str, path: Path, kind: str, *flags: str
) -> dict[str, Any]:
    code, summary, err = await run_import(capsys, url, *flags, "--kind", kind, str(path))
    assert code == 0, err
    assert summary is not None
    return summary


async def test_retention_drops_old_months_and_reports_keep_their_figures(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, database_url: str, stub: Stub
) -> None:
    await define_journey(database_url)
    old = DAYS_AGO_OLD
    history = {
        "enrollments": [
            enrollment("e1", "c1", days=old),
            enrollment("e2", "c2", days=old),
            enrollment("e3", "c3", days=old - 40),
        ],
        "touchpoints": [
            touch("t1", "c1", days=old - 1),
            touch("t2", "c2", days=old - 2),
            touch("t3", "c3", days=old - 41),
        ],
        "goal_events": [
            order("g1", "c1", days=old - 3),  # converts e1, credited to t1
            order("g2", "c2", days=old - 60),  # outside the window of t2: no conversion
            order("g3", "c3", days=old - 42),  # converts e3
        ],
    }
    for kind, rows in history.items():
        summary = await import_rows(
            capsys,
            database_url,
            write_ndjson(tmp_path / f"{kind}.ndjson", rows),
            kind,
            "--history",
        )
        assert summary["accepted"] == len(rows)
    live = {
        "enrollments": [enrollment("e4", "c4", days=5)],
        "touchpoints": [touch("t4", "c4", days=4)],
        "goal_events": [order("g4", "c4", days=3)],
    }
    live_files = {k: write_ndjson(tmp_path / f"live-{k}.ndjson", rows) for k, rows in live.items()}
    for kind, path in live_files.items():
        assert (await import_rows(capsys, database_url, path, kind))["accepted"] == 1

    tomorrow = midnight_days_ago(-1)  # a fixed end: "now" moves
    all_time = await report(stub, None, tomorrow)
    old_days = await report(stub, midnight_days_ago(old + 1), midnight_days_ago(old - 100))
    recent_days = await report(stub, midnight_days_ago(10), midnight_days_ago(0))
    assert (all_time.goal_conversions, old_days.goal_conversions) == (3, 2)
    assert old_days.messages and old_days.engaged == 3

    evaluated = await evaluate(stub, "v-before")
    assert (evaluated.goal_met, evaluated.goal_event_id, evaluated.credit) == (
        True,
        "g1",
        pb.GOAL_CREDIT_THIS_JOURNEY,
    )

    planned = await run_retention(capsys, database_url)
    old_months = {p for p in planned["expired"] if p.startswith(("touchpoints_", "goal_events_"))}
    assert planned["applied"] is False and planned["dropped"] == []
    assert {p.split("_")[0] for p in old_months} == {"touchpoints", "goal"}
    assert await fetch(database_url, "select 1 from touchpoints where event_id = 't1'")

    applied = await run_retention(capsys, database_url, "--apply")
    assert applied["applied"] is True
    assert set(applied["dropped"]) == set(planned["expired"])
    assert applied["ids_deleted"] == 6  # t1-t3 and g1-g3
    # The raw rows and their ids are gone; the live ones stay.
    for table in ("touchpoints", "goal_events", "touchpoint_ids", "goal_event_ids"):
        kept = await fetch(database_url, f"select event_id from {table} order by 1")
        assert [r["event_id"] for r in kept] == (["t4"] if "touch" in table else ["g4"])

    # Reports keep every figure, byte for byte.
    assert await report(stub, None, tomorrow) == all_time
    assert await report(stub, midnight_days_ago(old + 1), midnight_days_ago(old - 100)) == old_days
    assert await report(stub, midnight_days_ago(10), midnight_days_ago(0)) == recent_days

    # A dropped goal event cannot be explained any more, and says why.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ExplainGoalEvent(pb.ExplainGoalEventRequest(event_id="g1"), metadata=ACME)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "retention" in (refused.value.details() or "")

    # An Evaluate-goal step finds the dropped goal event that met the goal, as before.
    assert await evaluate(stub, "v-after") == evaluated

    # An amendment of a dropped goal event still updates its final conversion's value.
    amendment = goal_event(
        "g1-refund",
        "c1",
        "ORDER_UPDATED",
        ago(hours=2),
        value=journey_pb2.Money(currency_code="EUR", amount_micros=10_000_000),
    )
    amendment.amends_event_id = "g1"
    await stub.RecordGoalEvent(pb.RecordGoalEventRequest(goal_event=amendment), metadata=ACME)
    values = await fetch(
        database_url,
        "select value_micros from awards where enrollment_id = 'e1' and conversion_id = ''",
    )
    assert [r["value_micros"] for r in values] == [10_000_000]

    # A second run finds nothing more to drop.
    again = await run_retention(capsys, database_url, "--apply")
    assert again["dropped"] == [] and again["expired"] == []

    # Live events keep their idempotency: a re-run of their import is all duplicates.
    for kind, path in live_files.items():
        summary = await import_rows(capsys, database_url, path, kind)
        assert (summary["accepted"], summary["duplicate"]) == (0, 1)

    # A rebuild would recompute the old conversions from part of their history: refused. (Its
    # logging is configured on the process's stdout, not capsys's, which closes after the test.)
    with capsys.disabled():
        code = await asyncio.to_thread(
            cli.main, ["rebuild", "--database-url", database_url, "--tenant", "acme"]
        )
    assert code == 2
