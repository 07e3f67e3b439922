"""Keeping tables of rows derived from re-decisions in step with them: the rows of the
re-decided contacts from the horizon on (read with their histories) are compared with the newly
computed ones, and only the differences are written, every table's in one statement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Table:
    """A derived table: its name, its columns (tenant_id first: all of the table's columns, in
    its order, since rows travel as arrays of its row type), and the columns after tenant_id
    that make its primary key with their Postgres types."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]
    key_types: tuple[str, ...]

    def key_of(self, row: Row) -> tuple[Any, ...]:
        return tuple(row[self.columns.index(c)] for c in self.key)


@dataclass(frozen=True, slots=True)
class Difference:
    """What makes a table's stored rows equal the computed ones: the keys to delete (stored,
    no longer computed) and the rows to write (new, or changed under their key)."""

    table: Table
    gone: list[tuple[Any, ...]]
    fresh: list[Row]


def difference(
    table: Table,
    stored_rows: Sequence[asyncpg.Record] | None,
    computed: Mapping[tuple[Any, ...], Row],
) -> Difference:
    """The difference between the re-decided contacts' rows (`stored_rows`: of `table`'s row
    type, from the horizon on, as decisions.load_for_redecision read them) and `computed`
    (rows by key)."""
    stored = {
        table.key_of(row): row
        for row in (tuple(r[c] for c in table.columns) for r in stored_rows or ())
    }
    gone = [key for key in stored if key not in computed]
    fresh = [row for key, row in computed.items() if stored.get(key) != row]
    return Difference(table, gone, fresh)


async def write(
    conn: asyncpg.Connection, tenant_id: str, differences: Sequence[Difference]
) -> None:
    """Applies the differences of several tables in one statement: deletes of the keys gone,
    upserts of the fresh rows (a key is never both, so the parts cannot meet on a row)."""
    parts: list[str] = []
    arguments: list[Any] = [tenant_id]

    def parameter(value: Any) -> str:
        arguments.append(value)
        return f"${len(arguments)}"

    for index, diff in enumerate(differences):
        table = diff.table
        if diff.gone:
            arrays = ", ".join(
                f"{parameter([key[i] for key in diff.gone])}::{t}[]"
                for i, t in enumerate(table.key_types)
            )
            matches = " and ".join(f"t.{c} = k.{c}" for c in table.key)
            parts.append(
                f"gone{index} as (delete from {table.name} as t"
                f" using unnest({arrays}) as k({', '.join(table.key)})"
                f" where t.tenant_id = $1 and {matches})"
            )
        if diff.fresh:
            updated = [c for c in table.columns if c != "tenant_id" and c not in table.key]
            columns = ", ".join(table.columns)
            values = ", ".join(f"r.{c}" for c in table.columns[1:])
            parts.append(
                f"fresh{index} as (insert into {table.name} ({columns})"
                f" select $1, {values} from unnest({parameter(diff.fresh)}::{table.name}[]) as r"
                f" on conflict (tenant_id, {', '.join(table.key)}) do update set"
                f" {', '.join(f'{c} = excluded.{c}' for c in updated)})"
            )
    if parts:
        await conn.execute(f"with {', '.join(parts)} select", *arguments)
