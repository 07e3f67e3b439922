"""`journey-conversions keys create|list|revoke`: a tenant's API keys, managed directly in the
database (an operator's task: no RPC can create or list keys)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import asyncpg

from journey_conversions import cli_database, parse
from journey_conversions.errors import InvalidArgument
from journey_conversions.keys import Scope
from journey_conversions.store import api_keys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli_database.add_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a key (shown once)")
    create.add_argument("--tenant", required=True, help="the tenant the key acts for")
    create.add_argument("--name", default="", help="what the key is for")
    create.add_argument(
        "--scope",
        choices=[s.label for s in Scope],
        default=Scope.WRITE.label,
        help="read: lookups, reports, streams; write: and events; admin: and definitions"
        " (default: write)",
    )
    listing = actions.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", help="only this tenant's keys")
    revoke = actions.add_parser("revoke", help="revoke a key (in effect within seconds)")
    revoke.add_argument("key_id", help="the key's id (the part after jck_)")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.action == "create":
        try:
            parse.tenant(args.tenant, "")
        except InvalidArgument:
            parser.error("--tenant must be 1-64 letters, digits, '_', '.' or '-'")
    action = {"create": _create, "list": _list, "revoke": _revoke}[args.action]

    async def work(url: str) -> int:
        conn = await asyncpg.connect(url)
        try:
            return await action(conn, args)
        finally:
            await conn.close()

    return cli_database.run_migrated(args, work)


def _described(key: api_keys.StoredKey) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "tenant": key.tenant_id,
        "scope": key.scope.label,
        "name": key.name,
        "create_time": key.create_time.isoformat(),
        "revoke_time": key.revoke_time.isoformat() if key.revoke_time else None,
    }


async def _create(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    key, token = await api_keys.create(conn, args.tenant, args.name, Scope.from_label(args.scope))
    if args.json:
        print(json.dumps({**_described(key), "key": token}))
    else:
        print(f"Created key {key.key_id} for tenant {key.tenant_id} (scope {key.scope.label}).")
        print("It is shown only now; send it as 'authorization: Bearer <key>':")
        print(token)
    return 0


async def _list(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    found = [_described(k) for k in await api_keys.list_keys(conn, args.tenant)]
    if args.json:
        print(json.dumps(found))
        return 0
    columns = ("key_id", "tenant", "scope", "name", "create_time", "revoke_time")
    rows = [[str(k[c] or "") for c in columns] for k in found]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    for line in [[c.upper() for c in columns], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
    return 0


async def _revoke(conn: asyncpg.Connection, args: argparse.Namespace) -> int:
    revoked = await api_keys.revoke(conn, args.key_id)
    if not revoked:
        print(f"no key {args.key_id}", file=sys.stderr)
        return 1
    for key in revoked:
        if args.json:
            print(json.dumps(_described(key)))
        else:
            print(f"Revoked key {key.key_id} of tenant {key.tenant_id}.")
    return 0
