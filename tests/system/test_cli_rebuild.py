"""`journey-conversions rebuild`: derived rows recomputed from raw rows loaded straight into the
tables (as a bulk load or a backfill would), after which reports and awards are right."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg

from journey_conversions import cli

NOW = datetime.now(UTC)


async def load_raw_rows(url: str) -> None:
    """A journey with an email on step s1, a contact enrolled 3 days ago, a delivery 2 days
    ago and an order 1 day ago: raw rows only, nothing derived."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "insert into journeys (tenant_id, journey_id, window_seconds)"
            " values ('acme', 'j', 2592000);"
            "insert into journey_goals (tenant_id, journey_id, seq, criterion)"
            ' values (\'acme\', \'j\', 1, \'{"event_type": 11, "attribute_name": "",'
            ' "attribute_value": null, "list_ids": [], "message_ids": [],'
            ' "url_patterns": [], "form_ids": [], "product_ids": []}\');'
            "insert into journey_versions (tenant_id, journey_id, version) values ('acme', 'j', 1);"
            "insert into journey_messages (tenant_id, journey_id, version, message_id, channel,"
            " step_id) values ('acme', 'j', 1, 'email-1', 1, 's1')"
        )
        await conn.execute(
            "insert into enrollments (tenant_id, enrollment_id, contact_id, journey_id, version,"
            " enter_time) values ('acme', 'e1', 'c1', 'j', 1, $1)",
            NOW - timedelta(days=3),
        )
        # A bulk loader creates the months it loads (README, Retention).
        await conn.execute(
            "select ensure_month_partitions('touchpoints', $1)"
            " + ensure_month_partitions('goal_events', $1)",
            [NOW - timedelta(days=2), NOW - timedelta(days=1)],
        )
        await conn.execute(
            "insert into touchpoints (tenant_id, event_id, contact_id, journey_id, version,"
            " message_id, channel, action, occur_time) values"
            " ('acme', 't1', 'c1', 'j', 1, 'email-1', 1, 1, $1)",
            NOW - timedelta(days=2),
        )
        await conn.execute(
            "insert into goal_events (tenant_id, event_id, contact_id, event_type, occur_time,"
            " product_ids) values ('acme', 'g1', 'c1', 11, $1, '{p1}')",
            NOW - timedelta(days=1),
        )
    finally:
        await conn.close()


class TestRebuild:
    """Rebuilding a tenant fills every derived table from the raw rows."""

    async def test_rebuild_derives_facts_outcomes_awards_and_counts(
        self, database_url: str
    ) -> None:
        await load_raw_rows(database_url)
        code = await asyncio.to_thread(
            cli.main, ["rebuild", "--database-url", database_url, "--tenant", "acme"]
        )
        assert code == 0
        conn = await asyncpg.connect(database_url)
        try:
            first_touch = await conn.fetchval(
                "select first_touch_time from enrollments where enrollment_id = 'e1'"
            )
            assert first_touch == NOW - timedelta(days=2)
            award = await conn.fetchrow("select * from awards where tenant_id = 'acme'")
            assert award is not None
            assert (award["enrollment_id"], award["touchpoint_event_id"]) == ("e1", "t1")
            assert await conn.fetchval("select count(*) from conversion_events") == 1
            assert await conn.fetchval("select key from enrollment_reach") == "s1"
            assert await conn.fetchval("select sum(touchpoints) from touchpoint_counts") == 1
            assert await conn.fetchval("select goal_met_time from enrollments") == NOW - timedelta(
                days=1
            )
        finally:
            await conn.close()

    async def test_a_second_rebuild_changes_nothing(self, database_url: str) -> None:
        await load_raw_rows(database_url)
        for _ in range(2):
            code = await asyncio.to_thread(cli.main, ["rebuild", "--database-url", database_url])
            assert code == 0
        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("select count(*) from conversion_events") == 1
            assert await conn.fetchval("select count(*) from touchpoint_counts") == 1
        finally:
            await conn.close()
