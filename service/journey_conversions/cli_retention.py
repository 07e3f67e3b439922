"""`journey-conversions retention`: show, or with --apply carry out, what retention drops
(store/retention.py): the months of touchpoints and goal events that no decision reads again."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from journey_conversions import cli_database, clock, db
from journey_conversions.store import retention


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--apply", action="store_true", help="drop them (default: only say what would go)"
    )
    cli_database.add_arguments(parser)
    cli_database.add_time_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the outcome as JSON")


def run(args: argparse.Namespace) -> int:
    """Exit status 0 when done (or nothing to do), 2 when another retention was running."""
    policy = cli_database.time_policy(args)

    async def work(url: str) -> retention.Outcome:
        pool = await db.create_pool(url, 1, 2)
        try:
            now = clock.utc_now()
            if args.apply:
                return await retention.apply(pool, policy, now)
            async with db.connection(pool) as conn:
                return retention.Outcome(await retention.plan(conn, policy, now), (), 0)
        finally:
            await pool.close()

    outcome = cli_database.run_migrated(args, work)
    if args.json:
        print(json.dumps(_described(outcome, args.apply)))
    else:
        print(_lines(outcome, args.apply))
    if outcome.busy:
        print("journey-conversions retention: another retention is running", file=sys.stderr)
        return 2
    return 0


def _described(outcome: retention.Outcome, applied: bool) -> dict[str, Any]:
    return {
        "cutoff": outcome.plan.cutoff.isoformat(),
        "applied": applied and not outcome.busy,
        "expired": [p.name for p in outcome.plan.expired],
        "dropped": [p.name for p in outcome.dropped],
        "ids_deleted": outcome.ids_deleted,
        "kept": [p.name for p in outcome.plan.kept],
    }


def _lines(outcome: retention.Outcome, applied: bool) -> str:
    plan = outcome.plan
    lines = [f"cutoff {plan.cutoff:%Y-%m-%dT%H:%M:%SZ} (horizon less the longest window)"]
    if not plan.expired:
        lines.append("nothing to drop: every month holds events at or after the cutoff")
    elif applied and not outcome.busy:
        names = ", ".join(p.name for p in outcome.dropped)
        lines.append(f"dropped {names}; deleted {outcome.ids_deleted} event ids")
    else:
        lines.append("would drop " + ", ".join(p.name for p in plan.expired) + " (--apply drops)")
    lines.append(f"kept {len(plan.kept)} partitions")
    return "\n".join(lines)
