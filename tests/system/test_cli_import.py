"""`journey-conversions import`: NDJSON and CSV exports loaded through the batch path, with a
summary, a file of rejected rows, idempotent re-runs, attribution, and `--history` refused on
a live tenant."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from journey_conversions import cli

NOW = datetime.now(UTC).replace(microsecond=0)


def at(**delta: float) -> str:
    return (NOW - timedelta(**delta)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def define_journey(url: str, tenant: str = "acme") -> None:
    """Journey j (30-day window, goal ORDER_PLACED) with email message email-1 in version 1."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "insert into journeys (tenant_id, journey_id, window_seconds)"
            " values ($1, 'j', 2592000)",
            tenant,
        )
        await conn.execute(
            "insert into journey_goals (tenant_id, journey_id, seq, criterion) values ($1, 'j', 1,"
            ' \'{"event_type": 11, "attribute_name": "", "attribute_value": null,'
            ' "list_ids": [], "message_ids": [], "url_patterns": [], "form_ids": [],'
            ' "product_ids": []}\')',
            tenant,
        )
        await conn.execute(
            "insert into journey_versions (tenant_id, journey_id, version) values ($1, 'j', 1)",
            tenant,
        )
        await conn.execute(
            "insert into journey_messages (tenant_id, journey_id, version, message_id, channel,"
            " step_id) values ($1, 'j', 1, 'email-1', 1, 's1')",
            tenant,
        )
    finally:
        await conn.close()


async def fetch(url: str, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def run_import(
    capsys: pytest.CaptureFixture[str], url: str, *args: str
) -> tuple[int, dict[str, Any] | None, str]:
    """The exit status, the --json summary (None when nothing was printed) and stderr."""
    code = await asyncio.to_thread(
        cli.main, ["import", "--database-url", url, "--json", "--tenant", "acme", *args]
    )
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


def write_ndjson(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
        encoding="utf-8",
    )
    return path


def enrollment(enrollment_id: str, contact: str, **when: float) -> dict[str, Any]:
    return {
        "enrollment_id": enrollment_id,
        "contact_id": contact,
        "journey_id": "j",
        "version": 1,
        "enter_time": at(**when),
    }


def touch(event_id: str, contact: str, **when: float) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "contact_id": contact,
        "journey_id": "j",
        "version": 1,
        "message_id": "email-1",
        "channel": "CHANNEL_EMAIL",
        "action": "TOUCHPOINT_ACTION_CLICKED",
        "occur_time": at(**when),
    }


def order(event_id: str, contact: str, **when: float) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "contact_id": contact,
        "event_type": "GOAL_EVENT_TYPE_ORDER_PLACED",
        "occur_time": at(**when),
        "product_ids": ["p1"],
        "value": {"currency_code": "EUR", "amount_micros": "25000000"},
    }


def rejected_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class TestImport:
    async def test_ndjson_import_summary_rejections_rerun_and_attribution(
        self, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await define_journey(database_url)
        enrollments = write_ndjson(
            tmp_path / "enrollments.ndjson",
            [
                enrollment("e1", "c1", days=3),
                {
                    **enrollment("e2", "c2", days=3),
                    "exit_time": at(days=2),
                    "exit_reason": "EXIT_REASON_COMPLETED",
                },
                {**enrollment("e3", "c3", days=3), "version": 7},  # no such version
            ],
        )
        code, summary, _ = await run_import(
            capsys, database_url, "--kind", "enrollments", str(enrollments)
        )
        assert code == 1
        assert summary is not None
        assert (summary["accepted"], summary["duplicate"], summary["rejected"]) == (2, 0, 1)
        (bad,) = rejected_lines(tmp_path / "enrollments.ndjson.rejected.ndjson")
        assert bad["line"] == 3 and bad["id"] == "e3"
        assert bad["reasons"] == ["VERSION_NOT_FOUND: journey 'j' has no version 7"]

        touchpoints = write_ndjson(
            tmp_path / "touchpoints.ndjson",
            [
                touch("t1", "c1", days=2),
                "",  # blank lines are skipped, and still counted as lines
                touch("t1", "c1", days=2),  # the same id again: a duplicate
                {**touch("t2", "c1", days=2), "message_id": "nope"},
                {**touch("t3", "c1", days=2), "occur_time": at(days=90)},  # too late
                "{not json",
                {**touch("t4", "c1", days=2), "colour": "red"},
            ],
        )
        code, summary, err = await run_import(
            capsys, database_url, "--kind", "touchpoints", "--batch-size", "2", str(touchpoints)
        )
        assert code == 1
        assert summary is not None
        assert summary["rows"] == 6
        assert (summary["accepted"], summary["duplicate"], summary["rejected"]) == (1, 1, 4)
        assert "6/6 rows" in err
        rejected = rejected_lines(Path(summary["rejected_file"]))
        assert [r["line"] for r in rejected] == [4, 5, 6, 7]
        assert rejected[0]["reasons"] == ["MESSAGE_NOT_FOUND: message 'nope' is not in journey 'j'"]
        assert rejected[1]["reasons"][0].startswith(
            "occur_time: is older than the allowed lateness"
        )
        assert rejected[2]["reasons"][0].startswith("invalid JSON") and rejected[2]["id"] == ""
        assert "colour" in rejected[3]["reasons"][0]
        assert rejected[1]["row"]["event_id"] == "t3" and rejected[2]["row"] == "{not json"

        orders = write_ndjson(tmp_path / "orders.ndjson", [order("g1", "c1", days=1)])
        code, summary, _ = await run_import(
            capsys, database_url, "--kind", "goal_events", str(orders)
        )
        assert code == 0
        assert summary is not None and summary["accepted"] == 1
        assert summary["rejected_file"] is None
        assert not (tmp_path / "orders.ndjson.rejected.ndjson").exists()
        awards = await fetch(database_url, "select * from awards where tenant_id = 'acme'")
        assert [
            (a["enrollment_id"], a["touchpoint_event_id"], a["goal_event_id"]) for a in awards
        ] == [("e1", "t1", "g1")]
        assert awards[0]["value_micros"] == 25_000_000
        (exited,) = await fetch(
            database_url, "select * from enrollments where enrollment_id = 'e2'"
        )
        assert exited["exit_time"] == NOW - timedelta(days=2) and exited["exit_reason"] == 1

        # Re-running every file changes nothing: all duplicates (and the same rejections).
        for kind, path, counts in (
            ("enrollments", enrollments, (0, 2, 1)),
            ("touchpoints", touchpoints, (0, 2, 4)),
            ("goal_events", orders, (0, 1, 0)),
        ):
            code, summary, _ = await run_import(capsys, database_url, "--kind", kind, str(path))
            assert summary is not None
            assert (summary["accepted"], summary["duplicate"], summary["rejected"]) == counts
        assert len(await fetch(database_url, "select * from awards")) == 1
        assert len(await fetch(database_url, "select * from touchpoints")) == 1
        assert len(await fetch(database_url, "select * from conversion_events")) == 1

    async def test_csv_import_with_lists_nested_fields_and_text_summary(
        self, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await define_journey(database_url)
        (tmp_path / "e.ndjson").write_text(json.dumps(enrollment("e1", "c1", days=3)) + "\n")
        code, _, _ = await run_import(
            capsys, database_url, "--kind", "enrollments", str(tmp_path / "e.ndjson")
        )
        assert code == 0
        touchpoints = tmp_path / "touchpoints.csv"
        touchpoints.write_text(
            "event_id,contact_id,journey_id,version,message_id,channel,action,occur_time,"
            "machine_generated\n"
            f"t1,c1,j,1,email-1,CHANNEL_EMAIL,TOUCHPOINT_ACTION_OPENED,{at(days=2)},false\n"
            f"t2,c1,j,1,email-1,CHANNEL_EMAIL,TOUCHPOINT_ACTION_CLICKED,{at(days=2)},0\n"
            f"t3,c1,j,1,email-1,CHANNEL_EMAIL,TOUCHPOINT_ACTION_CLICKED,,\n"
            f"t1,c1,j,1,email-1,CHANNEL_EMAIL,TOUCHPOINT_ACTION_OPENED,{at(days=2)},false\n",
            encoding="utf-8",
        )
        code = await asyncio.to_thread(
            cli.main,
            [
                "import",
                "--database-url",
                database_url,
                "--tenant",
                "acme",
                "--kind",
                "touchpoints",
                "--rejected",
                str(tmp_path / "bad.ndjson"),
                str(touchpoints),
            ],
        )
        out, _ = capsys.readouterr()
        assert code == 1
        assert "4 rows, 2 accepted, 1 duplicate, 1 rejected" in out
        assert str(tmp_path / "bad.ndjson") in out
        (bad,) = rejected_lines(tmp_path / "bad.ndjson")
        assert bad["line"] == 4 and bad["id"] == "t3"
        assert bad["reasons"] == ["occur_time: is required"]
        assert bad["row"]["event_id"] == "t3"

        orders = tmp_path / "orders.csv"
        orders.write_text(
            "event_id,contact_id,event_type,occur_time,product_ids,value.currency_code,"
            "value.amount_micros\n"
            f"g1,c1,GOAL_EVENT_TYPE_ORDER_PLACED,{at(days=1)},p1|p2,EUR,5000000\n"
            f"g2,c1,GOAL_EVENT_TYPE_ORDER_PLACED,{at(days=1)},p3,eur,1\n",
            encoding="utf-8",
        )
        code, summary, _ = await run_import(
            capsys, database_url, "--kind", "goal_events", str(orders)
        )
        assert summary is not None
        assert (summary["accepted"], summary["rejected"]) == (1, 1)
        (stored,) = await fetch(database_url, "select * from goal_events")
        assert sorted(stored["product_ids"]) == ["p1", "p2"]
        assert (stored["value_currency"], stored["value_micros"]) == ("EUR", 5_000_000)
        (bad,) = rejected_lines(tmp_path / "orders.csv.rejected.ndjson")
        assert bad["line"] == 3
        assert bad["reasons"] == [
            "value.currency_code: must be three upper-case letters (ISO 4217)"
        ]
        (award,) = await fetch(database_url, "select * from awards")
        assert award["goal_event_id"] == "g1" and award["touchpoint_event_id"] in ("t1", "t2")

        code, summary, _ = await run_import(
            capsys, database_url, "--kind", "goal_events", str(orders)
        )
        assert summary is not None
        assert (summary["accepted"], summary["duplicate"], summary["rejected"]) == (0, 1, 1)

    def test_bad_arguments_exit_2(self, tmp_path: Path) -> None:
        unknown = tmp_path / "rows.txt"
        unknown.write_text("{}\n")
        for args in (
            ["--kind", "touchpoints", str(unknown)],  # no format
            ["--kind", "touchpoints", str(tmp_path / "missing.ndjson")],
            ["--kind", "touchpoints", "--batch-size", "0", "--format", "ndjson", str(unknown)],
            ["--kind", "touchpoints", "--tenant", "no spaces", str(unknown)],
        ):
            with pytest.raises(SystemExit) as caught:
                cli.main(
                    ["import", "--database-url", "postgresql://unused", "--tenant", "a", *args]
                )
            assert caught.value.code == 2


class TestHistory:
    async def test_old_rows_need_history_which_a_live_tenant_refuses(
        self, database_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        await define_journey(database_url)
        files = {
            "enrollments": write_ndjson(tmp_path / "e.ndjson", [enrollment("e1", "c1", days=200)]),
            "touchpoints": write_ndjson(tmp_path / "t.ndjson", [touch("t1", "c1", days=150)]),
            "goal_events": write_ndjson(tmp_path / "g.ndjson", [order("g1", "c1", days=149)]),
        }
        code, summary, _ = await run_import(
            capsys, database_url, "--kind", "touchpoints", str(files["touchpoints"])
        )
        assert code == 1 and summary is not None and summary["rejected"] == 1
        (bad,) = rejected_lines(tmp_path / "t.ndjson.rejected.ndjson")
        assert "older than the allowed lateness" in bad["reasons"][0]

        for kind, path in files.items():
            code, summary, _ = await run_import(
                capsys, database_url, "--history", "--kind", kind, str(path)
            )
            assert code == 0
            assert summary is not None
            assert (summary["accepted"], summary["history"], summary["rebuilt"]) == (1, True, True)
        (award,) = await fetch(database_url, "select * from awards")
        assert (award["enrollment_id"], award["touchpoint_event_id"]) == ("e1", "t1")
        assert award["award_time"] == NOW - timedelta(days=149)
        # A re-run of history is all duplicates, and rebuilds nothing.
        code, summary, _ = await run_import(
            capsys, database_url, "--history", "--kind", "goal_events", str(files["goal_events"])
        )
        assert summary is not None
        assert (summary["duplicate"], summary["rebuilt"]) == (1, False)

        # Live traffic (an event within the allowed lateness): --history is refused.
        recent = write_ndjson(tmp_path / "recent.ndjson", [order("g2", "c9", days=1)])
        code, _, _ = await run_import(capsys, database_url, "--kind", "goal_events", str(recent))
        assert code == 0
        code, summary, err = await run_import(
            capsys, database_url, "--history", "--kind", "touchpoints", str(files["touchpoints"])
        )
        assert code == 2 and summary is None
        assert "--history refused" in err and "live" in err
        # Another tenant is not live.
        await define_journey(database_url, "other")
        code = await asyncio.to_thread(
            cli.main,
            [
                "import",
                "--database-url",
                database_url,
                "--tenant",
                "other",
                "--history",
                "--kind",
                "enrollments",
                str(files["enrollments"]),
            ],
        )
        assert code == 0
        capsys.readouterr()
