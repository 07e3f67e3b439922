"""Keeping a table of rows derived from re-decisions in step with them: the rows of the
re-decided contacts from the horizon on (read with their histories) are compared with the newly
computed ones, and only the differences are deleted and inserted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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
    stored_rows: Sequence[asyncpg.Record] | None,
    computed: Mapping[tuple[Any, ...], Row],
) -> int:
    """Makes the re-decided contacts' rows equal `computed` (rows by key), given the rows they
    had (`stored_rows`: of `table`'s row type, from the horizon on, as
    decisions.load_for_redecision read them); returns how many rows were written."""
    stored = {
        table.key_of(row): row
        for row in (tuple(r[c] for c in table.columns) for r in stored_rows or ())
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
