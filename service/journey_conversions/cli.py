"""The `journey-conversions` command: serve, migrate or rebuild a database, import history, drop
expired history, or print a journey report."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from journey_conversions import cli_import, cli_keys, cli_report, cli_retention, db, logs
from journey_conversions import config as config_module
from journey_conversions.embedded_pg import postgres_url
from journey_conversions.logs import log
from journey_conversions.store import rebuild


async def _migrate(config: config_module.Config, rebuild_tenants: list[str] | None) -> None:
    """Applies pending migrations; with `rebuild_tenants` ([] for every tenant), then rebuilds
    those tenants' derived rows from their raw rows."""
    with postgres_url(config.database_url, config.data_dir) as url:
        applied = await db.migrate(url)
        log.info("migrated", applied=applied)
        if rebuild_tenants is not None:
            await _rebuild(url, rebuild_tenants)


async def _rebuild(url: str, tenants: list[str]) -> None:
    pool = await db.create_pool(url, 1, 2)
    try:
        if not tenants:
            tenants = [
                r[0]
                for r in await pool.fetch(
                    "select tenant_id from journeys union select tenant_id from enrollments"
                )
            ]
        for tenant in sorted(set(tenants)):

            def progress(what: str, done: int, total: int, tenant: str = tenant) -> None:
                log.info("rebuilding", tenant=tenant, what=what, done=done, total=total)

            rebuilt = await rebuild.rebuild_tenant(pool, tenant, progress)
            log.info(
                "rebuilt",
                tenant=tenant,
                enrollments=rebuilt.enrollments,
                contacts=rebuilt.contacts,
                award_changes=rebuilt.award_changes,
            )
    finally:
        await pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="journey-conversions",
        description="Journey touchpoints, goal events and conversion attribution over gRPC.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (
        ("serve", "run the gRPC server (migrates the database first)"),
        ("migrate", "apply pending database migrations and exit"),
        ("rebuild", "migrate, then recompute report facts, outcomes and awards from raw rows"),
    ):
        sub = commands.add_parser(name, help=text)
        config_module.add_arguments(sub)
        if name == "rebuild":
            sub.add_argument(
                "--tenant",
                action="append",
                default=[],
                help="a tenant to rebuild (repeatable; default: every tenant)",
            )
    report = commands.add_parser(
        "report",
        help="print a journey's report from a running server",
        description="Print a journey's report from a running server, as tables or JSON.",
    )
    cli_report.add_arguments(report)
    keys = commands.add_parser(
        "keys",
        help="create, list or revoke API keys",
        description="Create, list or revoke a tenant's API keys, directly in the database.",
    )
    cli_keys.add_arguments(keys)
    imports = commands.add_parser(
        "import",
        help="load historical enrollments, touchpoints or goal events from NDJSON or CSV",
        description="Load an NDJSON or CSV export of enrollments, touchpoints or goal events"
        " into a tenant, directly in the database, through the batch path of the RPCs;"
        " re-running an import changes nothing.",
    )
    cli_import.add_arguments(imports)
    retain = commands.add_parser(
        "retention",
        help="show or drop the months of touchpoints and goal events no decision reads again",
        description="Show (or with --apply drop) the monthly partitions of touchpoints and goal"
        " events wholly older than the allowed lateness plus the longest attribution window;"
        " reports keep their figures.",
    )
    cli_retention.add_arguments(retain)
    args = parser.parse_args(argv)
    if args.command == "report":
        return cli_report.run(args, report)
    if args.command == "keys":
        return cli_keys.run(args, keys)
    if args.command == "import":
        return cli_import.run(args, imports)
    if args.command == "retention":
        return cli_retention.run(args)
    try:
        config = config_module.load(args)
    except config_module.ConfigError as error:
        parser.error(str(error))
    if args.command == "serve":
        from journey_conversions.server import run

        try:
            run(config)
        except config_module.ConfigError as error:
            log.error("refusing to start", reason=str(error))
            return 2
    else:
        logs.configure(config.log_format, config.log_level)
        try:
            asyncio.run(_migrate(config, args.tenant if args.command == "rebuild" else None))
        except rebuild.HistoryDropped as error:
            log.error("rebuild refused", reason=str(error))
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
