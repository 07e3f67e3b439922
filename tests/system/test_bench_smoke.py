"""The benchmark tools at a tiny size: bench.tenant loads and rebuilds a tenant into a fresh
database through the test's server, and bench.report's measurements run against it; bench.flood
runs every measurement at its --tiny size. No timing is checked: only that the tools work.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
        .venv/bin/pytest -q tests/system/test_bench_smoke.py -p no:cacheprovider
"""

from __future__ import annotations

import asyncpg

from bench import flood, report, soak
from bench.tenant import TenantSpec, load_tenant

TINY = TenantSpec(journeys=3, enrollments=200, touchpoints=2000, goal_events=100, seed=7)


# Of the tables (a partitioned table's index counts once, not once per monthly partition).
INDEXES = (
    "select count(*) from pg_index x join pg_class c on c.oid = x.indrelid"
    " where c.relnamespace = current_schema()::regnamespace and not c.relispartition"
)


async def test_tiny_tenant_loads_rebuilds_and_reports(
    database_url: str, service_target: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        indexes_before = await conn.fetchval(INDEXES)
        loaded = await load_tenant(database_url, TINY, service_target, quiet=True)
        counted = {
            table: await conn.fetchval(
                f"select count(*) from {table} where tenant_id = $1", TINY.tenant_id
            )
            for table in ("journeys", "enrollments", "touchpoints", "goal_events", "goal_outcomes")
        }
        goal_awards = await conn.fetchval(
            "select count(*) from awards where tenant_id = $1 and conversion_id = ''",
            TINY.tenant_id,
        )
        indexes_after = await conn.fetchval(INDEXES)
    finally:
        await conn.close()
    assert counted == {
        "journeys": 3,
        "enrollments": 200,
        "touchpoints": 2000,
        "goal_events": 100,
        "goal_outcomes": 100,  # one outcome per goal event
    }
    assert goal_awards >= 1
    assert loaded.counts["goal conversions"] == goal_awards
    assert indexes_after == indexes_before  # dropped for the load and created again

    for variant in report.VARIANTS:
        ours = await report.measure_report(
            service_target, TINY.tenant_id, loaded.largest_journey, variant, calls=2, warmup=1
        )
        naive = await report.measure_naive(
            database_url, TINY.tenant_id, loaded.largest_journey, variant, calls=2, warmup=1
        )
        assert len(ours.seconds) == len(naive.seconds) == 2
        assert ours.p99 >= ours.p50 > 0
        assert naive.p99 >= naive.p50 > 0
        assert ours.figures["active"] > 0
        assert naive.figures["active"] > 0


async def test_soak_runs_and_sees_only_ok_or_overloaded(postgres_url: str) -> None:
    soaked = await soak.soak(postgres_url, seconds=1, clients=4)
    assert soaked.codes["OK"] > 0
    assert set(soaked.codes) <= {"OK", "RESOURCE_EXHAUSTED (OVERLOADED)"}
    assert len(soaked.rss_mib) >= 2 and all(mib > 0 for _, mib in soaked.rss_mib)


async def test_flood_measures_every_row_at_the_tiny_size(postgres_url: str) -> None:
    admin_url, options = flood.parse_arguments(["--database-url", postgres_url, "--tiny"])
    result = await flood.flood(admin_url, options)
    served = [
        *result.noop.values(),
        *result.touchpoints.values(),
        result.goal_events,
        result.entries,
        result.batches,
        result.stream,
    ]
    assert set(result.noop) == set(result.touchpoints) == {16, 64}
    ceilings = [result.ingest_ceiling, result.store_alone]
    assert all(t.done > 0 and t.seconds > 0 for t in [*served, *ceilings])
    assert all(t.peak_rss_mib is not None and t.peak_rss_mib > 0 for t in served)
    assert result.stream.done == options.rows
    (goal_latency,) = result.goal_latency
    assert goal_latency.loop.sent > 0 and goal_latency.peak_rss_mib > 0
    # Every goal event recorded writes WAL; checkpoints are counted, requested ones among them.
    work = goal_latency.postgres
    assert work.wal_bytes > 0 and 0 <= work.requested <= work.checkpoints
    timing = goal_latency.loop.timing
    assert timing is not None and timing.p99 >= timing.p50 > 0
    assert "(d) StreamIngest" in flood.table(result, options)
