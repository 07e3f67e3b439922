"""The `journey-conversions` command: serve, migrate a database, or print a journey report."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from journey_conversions import cli_report, db, logs
from journey_conversions import config as config_module
from journey_conversions.embedded_pg import EmbeddedPostgres
from journey_conversions.logs import log


async def _migrate(config: config_module.Config) -> None:
    embedded = None
    url = config.database_url
    if url is None:
        embedded = EmbeddedPostgres(config.data_dir)
        url = embedded.start()
    try:
        applied = await db.migrate(url)
        log.info("migrated", applied=applied)
    finally:
        if embedded is not None:
            embedded.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="journey-conversions",
        description="Journey touchpoints, goal events and conversion attribution over gRPC.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the gRPC server (migrates the database first)"),
        ("migrate", "apply pending database migrations and exit"),
    ):
        sub = commands.add_parser(name, help=text)
        config_module.add_arguments(sub)
    report = commands.add_parser(
        "report",
        help="print a journey's report from a running server",
        description="Print a journey's report from a running server, as tables or JSON.",
    )
    cli_report.add_arguments(report)
    args = parser.parse_args(argv)
    if args.command == "report":
        return cli_report.run(args, report)
    config = config_module.load(args)
    if args.command == "serve":
        from journey_conversions.server import serve

        asyncio.run(serve(config))
    else:
        logs.configure(config.log_format, config.log_level)
        asyncio.run(_migrate(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
