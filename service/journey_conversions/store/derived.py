"""Keeping tables of rows derived from re-decisions in step with them: the rows of the
re-decided contacts from the horizon on (read with their histories) are compared with the newly
computed ones, and only the differences are written (by the database function write_decision,
migration 0012, with the rest of what a re-decision writes)."""

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
    that make its primary key."""

    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Difference:
    """What makes a table's stored rows equal the computed ones: the stored rows to delete (by
    their key: no longer computed) and the rows to write (new, or changed under their key)."""

    gone: list[Row]
    fresh: list[Row]


def difference(
    table: Table,
    stored_rows: Sequence[asyncpg.Record] | None,
    computed: Mapping[tuple[Any, ...], Row],
) -> Difference:
    """The difference between the re-decided contacts' rows (`stored_rows`: of `table`'s row
    type, from the horizon on, as decisions.load_for_redecision read them) and `computed`
    (rows by key)."""
    positions = [table.columns.index(c) for c in table.key]
    stored = {
        tuple(row[i] for i in positions): row
        for row in (tuple(r[c] for c in table.columns) for r in stored_rows or ())
    }
    gone = [row for key, row in stored.items() if key not in computed]
    fresh = [row for key, row in computed.items() if stored.get(key) != row]
    return Difference(gone, fresh)
