"""What keeping reports fast costs each touchpoint write: the service's touchpoint insert with the
per-enrollment report facts (first touches, steps and paths reached) against the same insert
without them (the statement before migration 0002), in the same run, on the same database.

Every touchpoint belongs to an active enrollment (the realistic case, where the facts have work
to do). The two statements take turns, twice each, on fresh event ids, with the same batch size
and concurrency; the figure that matters is the ratio.

    .venv/bin/python -m bench.write_cost --database-url postgresql://postgres@127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import functools
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.ingest import run_concurrently, scratch_database
from journey_conversions.store import sql

TENANT = "bench"
MESSAGES = [
    ("email-1", "s1", "a"),
    ("email-2", "s2", "a"),
    ("email-3", "s3", "b"),
    ("sms-1", "s4", ""),
]

# The touchpoint insert of the service before report facts (commit e70d698).
WITHOUT_FACTS = """
with new as (insert into touchpoints (tenant_id, event_id, contact_id, journey_id, version,
    message_id, channel, action, occur_time, machine_generated)
  select $1, * from unnest($2::text[], $3::text[], $4::text[], $5::int[], $6::text[],
    $7::smallint[], $8::smallint[], $9::timestamptz[], $10::bool[])
  on conflict (tenant_id, event_id) do nothing
  returning event_id, contact_id, journey_id, occur_time)
select new.event_id, new.contact_id, exists (select 1 from goal_events g
  join journeys j on j.tenant_id = $1 and j.journey_id = new.journey_id
  where g.tenant_id = $1 and g.contact_id = new.contact_id
  and g.occur_time >= new.occur_time
  and g.occur_time <= new.occur_time + make_interval(secs => j.window_seconds))
  as touches_goal_event from new
"""


async def setup(url: str, contacts: int) -> None:
    """One journey with four messages on steps and paths; every contact enrolled 10 days ago."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(
            "insert into journeys (tenant_id, journey_id, window_seconds)"
            " values ($1, 'j', 2592000)",
            TENANT,
        )
        await conn.execute(
            "insert into journey_versions (tenant_id, journey_id, version) values ($1, 'j', 1)",
            TENANT,
        )
        await conn.executemany(
            "insert into journey_messages (tenant_id, journey_id, version, message_id, channel,"
            " step_id, path) values ($1, 'j', 1, $2, $3, $4, $5)",
            [(TENANT, m, 2 if m.startswith("sms") else 1, s, p) for m, s, p in MESSAGES],
        )
        entered = datetime.now(UTC) - timedelta(days=10)
        await conn.copy_records_to_table(
            "enrollments",
            columns=[
                "tenant_id",
                "enrollment_id",
                "contact_id",
                "journey_id",
                "version",
                "enter_time",
            ],
            records=[(TENANT, f"e{i}", f"c{i}", "j", 1, entered) for i in range(contacts)],
        )
        await conn.execute("analyze")
    finally:
        await conn.close()


def touchpoint_columns(batch: list[int], tag: str, contacts: int) -> tuple[object, ...]:
    now = datetime.now(UTC)
    picked = [MESSAGES[i % len(MESSAGES)] for i in batch]
    return (
        TENANT,
        [f"{tag}-{i}" for i in batch],
        [f"c{i % contacts}" for i in batch],
        ["j"] * len(batch),
        [1] * len(batch),
        [m for m, _, _ in picked],
        [2 if m.startswith("sms") else 1 for m, _, _ in picked],
        [3] * len(batch),
        [now - timedelta(minutes=i % 10_000) for i in batch],
        [False] * len(batch),
    )


async def rate(
    pool: asyncpg.Pool, statement: str, tag: str, rows: int, size: int, contacts: int
) -> float:
    """Touchpoints per second through `statement`, `size` per call, 4 calls in flight."""

    async def insert(batch: list[int]) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.fetch(statement, *touchpoint_columns(batch, tag, contacts))

    numbers = list(range(rows))
    jobs = [functools.partial(insert, numbers[i : i + size]) for i in range(0, rows, size)]
    return rows / await run_concurrently(jobs, 4)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--database-url", required=True, help="admin URL of a Postgres server")
    parser.add_argument("--rows", type=int, default=100_000, help="touchpoints per turn")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--contacts", type=int, default=20_000)
    args = parser.parse_args()
    async with scratch_database(args.database_url) as url:
        await measure(url, args)


async def measure(url: str, args: argparse.Namespace) -> None:
    await setup(url, args.contacts)
    pool = await asyncpg.create_pool(url, min_size=4, max_size=4)
    assert pool is not None
    statements = {"without facts": WITHOUT_FACTS, "with facts": sql.statement("insert_touchpoints")}
    rates: dict[str, list[float]] = {name: [] for name in statements}
    try:
        for turn in range(2):
            for name, statement in statements.items():
                tag = f"{name.replace(' ', '-')}-{turn}"
                rates[name].append(
                    await rate(pool, statement, tag, args.rows, args.batch, args.contacts)
                )
    finally:
        await pool.close()
    print(f"rows={args.rows} per turn, batch={args.batch}, concurrency=4, contacts={args.contacts}")
    for name, found in rates.items():
        print(f"{name:>14}: " + "  ".join(f"{r:8.0f}/s" for r in found))
    best = {name: max(found) for name, found in rates.items()}
    print(f"with / without facts (best turns): {best['with facts'] / best['without facts']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
