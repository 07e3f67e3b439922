"""The database of the operator commands that write to it directly (`keys`, `import`): its
arguments, and running a command's work on it, migrated first."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from journey_conversions import db
from journey_conversions.config import default_data_dir
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
