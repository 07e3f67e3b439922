"""The database of the operator commands that write to it directly (`keys`, `import`): its
arguments, and running a command's work on it, migrated first."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import TypeVar

from journey_conversions import db
from journey_conversions.clock import TimePolicy
from journey_conversions.config import SETTINGS, default_data_dir
from journey_conversions.embedded_pg import postgres_url

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url", help="Postgres URL ($DATABASE_URL; none: the embedded Postgres)"
    )
    parser.add_argument("--data-dir", help="embedded Postgres data directory ($JC_DATA_DIR)")


def run_migrated(args: argparse.Namespace, work: Callable[[str], Awaitable[T]]) -> T:
    """`work(url)` on the database the arguments (or the environment) name, migrated first."""
    url = args.database_url or os.environ.get("DATABASE_URL") or None
    data_dir = Path(args.data_dir or os.environ.get("JC_DATA_DIR") or default_data_dir(os.environ))
    with postgres_url(url, data_dir) as running:

        async def main() -> T:
            await db.migrate(running)
            return await work(running)

        return asyncio.run(main())


def _setting_default(flag: str) -> str:
    return next(default for f, _, default, _ in SETTINGS if f == flag)


def add_time_arguments(parser: argparse.ArgumentParser) -> None:
    """The server's time settings, for commands that judge event times as it does."""
    parser.add_argument(
        "--allowed-lateness-days",
        type=float,
        help="oldest event accepted, days ($JC_ALLOWED_LATENESS_DAYS,"
        f" {_setting_default('--allowed-lateness-days')}); give the server's",
    )
    parser.add_argument(
        "--max-clock-skew-seconds",
        type=float,
        help="future tolerance, seconds ($JC_MAX_CLOCK_SKEW_SECONDS,"
        f" {_setting_default('--max-clock-skew-seconds')})",
    )


def _setting(value: float | None, flag: str, env_name: str) -> float:
    if value is not None:
        return value
    return float(os.environ.get(env_name) or _setting_default(flag))


def time_policy(args: argparse.Namespace) -> TimePolicy:
    """The time policy of add_time_arguments' flags, the environment, or the defaults."""
    return TimePolicy(
        timedelta(
            days=_setting(
                args.allowed_lateness_days, "--allowed-lateness-days", "JC_ALLOWED_LATENESS_DAYS"
            )
        ),
        timedelta(
            seconds=_setting(
                args.max_clock_skew_seconds, "--max-clock-skew-seconds", "JC_MAX_CLOCK_SKEW_SECONDS"
            )
        ),
    )
