"""Schema migrations as operators meet them: replicas starting together on an empty database,
`journey-conversions migrate` run twice, and migration files that match the live schema."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import asyncpg

from journey_conversions import db
from tests.processes import Spawn, health

SERVICE = "journeys.conversions.v1.JourneyConversionsService"


def shipped() -> list[tuple[int, str]]:
    return [(number, name) for number, name, _ in db.migration_files()]


async def applied(url: str) -> list[tuple[int, str, datetime]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "select version, name, applied_time from schema_migrations order by version"
        )
    finally:
        await conn.close()
    return [(r["version"], r["name"], r["applied_time"]) for r in rows]


class TestReplicasStartingTogether:
    """Two servers started at the same moment on an empty database migrate it exactly once."""

    async def test_both_serve_and_each_migration_is_applied_once(
        self, spawn: Spawn, empty_database: str
    ) -> None:
        args = (
            "serve",
            "--database-url",
            empty_database,
            "--listen",
            "127.0.0.1:0",
            "--auth",
            "dev",
        )
        first, second = await asyncio.gather(
            spawn(*args, "--metrics-listen", ""), spawn(*args, "--metrics-listen", "")
        )
        ports = list(await asyncio.gather(first.serving_port(), second.serving_port()))
        assert ports[0] != ports[1]
        for port in ports:
            assert await health(port) == "SERVING"
            assert await health(port, SERVICE) == "SERVING"

        assert [(v, n) for v, n, _ in await applied(empty_database)] == shipped()
        logged = [e["migration"] for p in (first, second) for e in p.logged("migration applied")]
        assert sorted(logged) == [name for _, name in shipped()]

        assert list(await asyncio.gather(first.stop(), second.stop())) == [0, 0]
        assert first.logged("stopped") and second.logged("stopped")


class TestMigrateCommand:
    """`journey-conversions migrate` applies what is pending, and nothing the second time."""

    async def test_second_migrate_is_a_no_op(self, spawn: Spawn, empty_database: str) -> None:
        once = await spawn("migrate", "--database-url", empty_database)
        assert await once.finish() == 0, once.output()
        assert once.logged("migrated")[0]["applied"] == [name for _, name in shipped()]
        after_first = await applied(empty_database)

        twice = await spawn("migrate", "--database-url", empty_database)
        assert await twice.finish() == 0, twice.output()
        assert twice.logged("migrated")[0]["applied"] == []
        assert twice.logged("migration applied") == []
        assert await applied(empty_database) == after_first


_CREATED = re.compile(r"create\s+(table|index|unique\s+index)\s+(\w+)", re.IGNORECASE)


class TestMigrationFilesMatchTheSchema:
    """Every table and index the migration files create exists in a migrated database."""

    async def test_every_created_table_and_index_exists(self, database_url: str) -> None:
        created: dict[str, set[str]] = {"table": set(), "index": set()}
        for _, _, sql in db.migration_files():
            for kind, name in _CREATED.findall(sql):
                created["table" if kind.lower() == "table" else "index"].add(name)
        assert created["table"], "the migration files create no table?"

        conn = await asyncpg.connect(database_url)
        try:
            tables = {
                r["table_name"]
                for r in await conn.fetch(
                    "select table_name from information_schema.tables"
                    " where table_schema = 'public' and table_type = 'BASE TABLE'"
                )
            }
            indexes = {
                r["indexname"]
                for r in await conn.fetch(
                    "select indexname from pg_indexes where schemaname = 'public'"
                )
            }
        finally:
            await conn.close()
        assert tables == created["table"] | {"schema_migrations"}
        assert created["index"] <= indexes


class TestUpgradeKeepsData:
    """A database migrated and written by an earlier release upgrades with its rows intact."""

    async def test_awards_take_their_enrollments_entry_and_arm(self, empty_database: str) -> None:
        conn = await asyncpg.connect(empty_database)
        try:
            # The schema as release 0002 left it, with one treated and one holdout enrollment,
            # each with an award.
            await conn.execute(
                "create table schema_migrations (version integer primary key, name text not"
                " null, applied_time timestamptz not null default now())"
            )
            for number, name, sql in db.migration_files():
                if number <= 2:
                    await conn.execute(sql)
                    await conn.execute(
                        "insert into schema_migrations (version, name) values ($1, $2)",
                        number,
                        name,
                    )
            await conn.execute(
                "insert into journeys (tenant_id, journey_id, window_seconds)"
                " values ('t', 'j', 3600);"
                "insert into journey_versions (tenant_id, journey_id, version)"
                " values ('t', 'j', 1);"
                "insert into enrollments (tenant_id, enrollment_id, contact_id, journey_id,"
                " version, enter_time, holdout) values"
                " ('t', 'treated', 'c1', 'j', 1, '2026-01-01T10:00:00Z', false),"
                " ('t', 'held', 'c2', 'j', 1, '2026-01-02T11:00:00Z', true);"
                "insert into awards (tenant_id, enrollment_id, conversion_id, contact_id,"
                " journey_id, version, source, award_time) values"
                " ('t', 'treated', '', 'c1', 'j', 1, 1, '2026-01-03T00:00:00Z'),"
                " ('t', 'held', 'named', 'c2', 'j', 1, 2, '2026-01-04T00:00:00Z')"
            )
            assert await db.migrate(empty_database) == [
                name for number, name in shipped() if number > 2
            ]
            rows = await conn.fetch(
                "select enrollment_id, enter_time, holdout from awards order by enrollment_id"
            )
        finally:
            await conn.close()
        assert [(r["enrollment_id"], r["enter_time"].isoformat(), r["holdout"]) for r in rows] == [
            ("held", "2026-01-02T11:00:00+00:00", True),
            ("treated", "2026-01-01T10:00:00+00:00", False),
        ]
