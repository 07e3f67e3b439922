"""Keeping a table of rows derived from re-decisions in step with them: the rows of the
re-decided contacts from the horizon on are compared with the newly computed ones, and only the
differences are deleted and inserted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """A derived table: its name, its columns (tenant_id first), the columns after tenant_id
    that make its key with their Postgres types, and the time column that the re-decision
    horizon applies to."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    key_types: tuple[str, ...]
    time_column: str

    def key_of(self, row: Row) -> tuple[Any, ...]:
        return tuple(row[self.columns.index(c)] for c in self.key)


async def sync(
    conn: asyncpg.Connection,
    table: Table,
    tenant_id: str,
    contacts: list[str],
    since: datetime,
    computed: Mapping[tuple[Any, ...], Row],
) -> int:
    """Makes the contacts' rows from `since` on equal `computed` (rows by key); returns how
    many rows were written."""
    stored = {
        table.key_of(row): row
        for row in (
            tuple(r.values())
            for r in await conn.fetch(
                f"select {', '.join(table.columns)} from {table.name}"
                f" where tenant_id = $1 and contact_id = any($2::text[])"
                f" and {table.time_column} >= $3",
                tenant_id,
                contacts,
                since,
            )
        )
    }
    stale = [key for key, row in stored.items() if computed.get(key) != row]
    fresh = [row for key, row in computed.items() if stored.get(key) != row]
    if stale:
        matches = " and ".join(f"t.{c} = k.{c}" for c in table.key)
        arrays = ", ".join(f"${i + 2}::{t}[]" for i, t in enumerate(table.key_types))
        await conn.execute(
            f"delete from {table.name} as t using unnest({arrays}) as k({', '.join(table.key)})"
            f" where t.tenant_id = $1 and {matches}",
            tenant_id,
            *([key[i] for key in stale] for i in range(len(table.key))),
        )
    if fresh:
        placeholders = ", ".join(f"${i + 1}" for i in range(len(table.columns)))
        await conn.executemany(
            f"insert into {table.name} ({', '.join(table.columns)}) values ({placeholders})",
            fresh,
        )
    return len(fresh)
