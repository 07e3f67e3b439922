"""Keys and statements that let the tables be distributed by tenant (issue 9, "Scale-out path").

Citus distributes a table by one column and co-locates the rows of equal values: a primary key
or unique constraint can be enforced only when it contains that column, and a statement runs on
one node only when it pins that column to one value. So, with the tenant as the distribution
column:

- `test_every_key_starts_with_the_tenant` reads pg_catalog on a migrated database: every table
  has a NOT NULL tenant_id, and every primary key, unique constraint, unique index and foreign
  key starts with it (GLOBAL_TABLES excepted);
- `test_every_statement_the_server_sends_filters_by_tenant` runs a workload touching every RPC
  through a real server that checks API keys (plus a rebuild and a health probe) and captures
  every statement its connections send (asyncpg query loggers, on the pool's connections and
  the LISTEN connection): each reference to a tenant table must be pinned to one tenant, and the
  bound parameter must be a tenant of the workload, except the statements of GLOBAL_STATEMENTS;
- `test_every_stored_statement_filters_by_tenant` applies the same check to store/sql/*.sql;
- `test_the_check_catches_a_missing_filter` shows the check failing on copies of real
  statements with their tenant filter removed or weakened.

What "pinned to one tenant" means, for each reference to a tenant table (`from`, `join`,
`update`, `delete from`, `using`, `insert into`), after comments and string literals are
stripped:

- a read, update or delete: its query scope (the (sub)query, and the branch of a union, where
  the table is named) holds `tenant_id = $n` for it (qualified by its alias, or unqualified when
  it is the only tenant table there), or `tenant_id = other.tenant_id` with `other` pinned in
  turn (a join on the tenant, a correlated subquery). `tenant_id = any(...)` pins nothing,
  nor does a condition that is one side of an OR;
- an insert: its column list names tenant_id, and the value given for it is a parameter `$n`;
  an `on conflict (...)` target starts with tenant_id;
- a statement that names a tenant table where none of the forms above does (a comma join, an
  ANALYZE) is reported, so that the check never skips one silently.

The check reads SQL with regular expressions and parentheses, not a parser: it is written for
the statements this service sends, and fails (rather than passes) on forms it does not know.

Non-unique indexes need not start with tenant_id (Citus builds them per shard either way). The
one that does not today is `api_keys_by_id` on api_keys (key_id): a presented key names its id,
not its tenant; see GLOBAL_STATEMENTS.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import resources
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import pytest
from asyncpg.connection import LoggedQuery
from journeys.conversions.v1 import conversions_pb2, events_pb2, journey_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import config as config_module
from journey_conversions import db
from journey_conversions.server import App, build
from journey_conversions.store import rebuild
from tests.api.test_isolation_matrix import (
    ABSENT_IDS,
    B_IDS,
    CASES,
    READS,
    Case,
    Ids,
    build_b,
    reply,
)
from tests.builders import NOW, ago, define_journey, exit_, goal, goal_event, message, touchpoint
from tests.builders import ts as timestamp
from tests.keys import bearer, create_key

if TYPE_CHECKING:
    from tests.builders import Stub

TENANT_COLUMN = "tenant_id"
A_TENANT, B_TENANT = "acme", "globex"
TENANTS = frozenset({A_TENANT, B_TENANT})

# Tables that are global by design: no tenant_id, keys of their own.
GLOBAL_TABLES = {
    # The migration ledger of the whole database (db.migrate), written under an advisory lock
    # at start. On Citus it would stay on the coordinator (a local table).
    "schema_migrations",
    # What retention dropped (store/retention.py): monthly partitions hold every tenant's rows.
    "retention_runs",
}

# A server that checks API keys, as deployed.
KEYED_SERVER = ("--pool-min-size", "4", "--pool-max-size", "4", "--auth", "keys")
STREAM_DEADLINE_SECONDS = 0.3


# --- the statement check ----------------------------------------------------------------------


def normalize(statement: str) -> str:
    """The statement lower-cased, without comments, each string literal as '', quoted
    identifiers unquoted, a `public.` schema dropped, and whitespace collapsed."""
    out: list[str] = []
    i, n = 0, len(statement)
    while i < n:
        if statement.startswith("--", i):
            end = statement.find("\n", i)
            i = n if end < 0 else end
            out.append(" ")
        elif statement.startswith("/*", i):
            end = statement.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
        elif statement[i] == "'":
            j = i + 1
            while j < n and not (statement[j] == "'" and not statement.startswith("''", j)):
                j += 2 if statement.startswith("''", j) else 1
            out.append("''")
            i = j + 1
        elif statement[i] == '"':
            end = statement.find('"', i + 1)
            out.append(statement[i + 1 : end])
            i = end + 1
        else:
            out.append(statement[i])
            i += 1
    text = " ".join("".join(out).lower().split())
    return re.sub(r"\bpublic\.", "", text)


# Words that can follow a table where an alias could: never an alias.
_KEYWORDS = (
    "where|on|set|join|left|right|inner|outer|cross|full|natural|order|group|limit|offset|using"
    "|union|intersect|except|returning|having|window|for|values|select|and|or|not|default"
    "|lateral|tablesample|with|as|into|from"
)
# A table named where it is read or written, and its alias.
_REFERENCE = re.compile(
    r"\b(from|join|into|update|using)\s+(?:only\s+)?([a-z_]\w*)(?![\w.(])"
    rf"(?:\s+(?:as\s+)?(?!(?:{_KEYWORDS})\b)([a-z_]\w*)(?![\w.(]))?"
)
_QUERY_GROUP = re.compile(r"\s*(select|with|insert|update|delete|values)\b")
_SET_OPERATOR = re.compile(r"\b(union|intersect|except)\b")
_CTE = re.compile(
    r"(?:\bwith\s+(?:recursive\s+)?|,\s*)([a-z_]\w*)\s+as\s+(?:not\s+)?(?:materialized\s+)?\("
)
_OPERAND = r"(\$\d+|(?:[a-z_]\w*\.)?tenant_id)"
_EQUALITY = re.compile(rf"(?<![\w.$]){_OPERAND}\s*=\s*{_OPERAND}(?![\w.(\[])")
_CONFLICT_TARGET = re.compile(r"\bon conflict \(([^)]*)\)")
_FROM = re.compile(r"\bfrom\b")
# Where a condition's clause begins or ends.
_CLAUSE = re.compile(
    r"\b(select|from|where|on|having|join|left|right|inner|full|cross|group|order|limit|offset"
    r"|returning|union|intersect|except|window|using|set|values|conflict|when|then|else|end)\b"
)


@dataclass(frozen=True)
class Reference:
    """A tenant table named in a statement, where it is named, and the name it goes by."""

    table: str
    name: str  # its alias, or the table's own name
    position: int
    insert: bool


@dataclass
class Analysis:
    references: list[Reference] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    tenant_parameters: set[int] = field(default_factory=set)  # the $n that name the tenant


def _groups(text: str) -> list[tuple[int, int]]:
    stack: list[int] = []
    found: list[tuple[int, int]] = []
    for i, char in enumerate(text):
        if char == "(":
            stack.append(i)
        elif char == ")":
            found.append((stack.pop(), i))
    assert not stack, f"unbalanced parentheses: {text}"
    return found


def _split_top(text: str) -> list[str]:
    """`text` split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


class _Scopes:
    """The query scopes of a statement: the whole statement, and each parenthesized (sub)query
    (a subquery, a lateral, a CTE body), each cut into the branches of its unions."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.queries = [g for g in _groups(text) if _QUERY_GROUP.match(text, g[0] + 1) is not None]
        self.root = (-1, len(text))

    def scope_of(self, position: int) -> tuple[int, int]:
        inside = [g for g in self.queries if g[0] < position < g[1]]
        return max(inside, default=self.root)  # the innermost: it opens last

    def parent(self, scope: tuple[int, int]) -> tuple[int, int] | None:
        return None if scope == self.root else self.scope_of(scope[0])

    def own_text(self, scope: tuple[int, int]) -> str:
        """The scope's text at its absolute positions, blank outside it and in its subqueries."""
        chars = [" "] * len(self.text)
        chars[scope[0] + 1 : scope[1]] = self.text[scope[0] + 1 : scope[1]]
        for start, end in self.queries:
            if scope[0] < start and end < scope[1]:
                chars[start : end + 1] = " " * (end + 1 - start)
        return "".join(chars)

    def in_disjunction(self, scope: tuple[int, int], position: int) -> bool:
        """Whether the condition at `position` is one side of an OR: in the parentheses around
        it, or in its clause (`where ... or ...`). Then it filters nothing by itself."""
        own = self.own_text(scope)
        around = [
            g for g in _groups(own) if scope[0] < g[0] < position < g[1] and g not in self.queries
        ]
        for start, end in [*around, (scope[0], scope[1])]:
            level = list(own[start + 1 : end])
            for inner_start, inner_end in _groups(own):
                if start < inner_start and inner_end < end:
                    level[inner_start - start - 1 : inner_end - start] = " " * (
                        inner_end + 1 - inner_start
                    )
            text, at = "".join(level), position - start - 1
            cuts = [m.start() for m in _CLAUSE.finditer(text)]
            begin = max((c for c in cuts if c < at), default=0)
            finish = min((c for c in cuts if c > at), default=len(text))
            if re.search(r"\bor\b", text[begin:finish]):
                return True
        return False

    def branch(self, scope: tuple[int, int], position: int) -> tuple[int, int]:
        """The span of the union branch of `scope` that holds `position`."""
        cuts = [m.start() for m in _SET_OPERATOR.finditer(self.own_text(scope))]
        start = max((c for c in cuts if c < position), default=scope[0])
        end = min((c for c in cuts if c > position), default=scope[1])
        return start, end


def analyze(statement: str, tenant_tables: Iterable[str]) -> Analysis:
    """Whether every reference to a tenant table in `statement` is pinned to one tenant."""
    tables = frozenset(tenant_tables)
    text = normalize(statement)
    scopes = _Scopes(text)
    ctes = {m.group(1) for m in _CTE.finditer(text)}
    found = Analysis()
    for match in _REFERENCE.finditer(text):
        keyword, table, alias = match.groups()
        if table in tables and table not in ctes:
            name = alias or table
            found.references.append(Reference(table, name, match.start(2), keyword == "into"))
    for table in sorted(tables - ctes - {r.table for r in found.references}):
        if re.search(rf"(?<![\w.]){table}(?![\w.])", text) and re.search(
            rf"(\b(from|join|into|update|using|table|analyze|vacuum|truncate|lock|copy)|,)"
            rf"\s+(only\s+)?{table}(?![\w.(])",
            text,
        ):
            found.problems.append(f"{table} is named where the check cannot tell its filter")

    def place(position: int) -> tuple[tuple[int, int], tuple[int, int]]:
        scope = scopes.scope_of(position)
        return scope, scopes.branch(scope, position)

    def resolve(operand: str, position: int) -> Reference | int | None:
        if operand.startswith("$"):
            return int(operand[1:])
        qualifier = operand.rpartition(".")[0]
        scope: tuple[int, int] | None = scopes.scope_of(position)
        at = position
        while scope is not None:
            branch = scopes.branch(scope, at)
            visible = [
                r
                for r in found.references
                if place(r.position) == (scope, branch) and (qualifier or not r.insert)
            ]
            if qualifier:
                named = [r for r in visible if r.name == qualifier]
                if named:
                    return named[0]
            elif visible:
                return visible[0] if len(visible) == 1 else None  # ambiguous in SQL too
            at = scope[0]
            scope = scopes.parent(scope)
        return None

    edges: list[tuple[Reference | int | None, Reference | int | None]] = []
    for scope in [scopes.root, *scopes.queries]:
        own = scopes.own_text(scope)
        for m in _EQUALITY.finditer(own):
            if re.search(r"\bset\s+$", own[: m.start()]):
                continue  # an assignment, not a filter
            if scopes.in_disjunction(scope, m.start()):
                continue  # `tenant_id = $1 or ...` lets other tenants' rows through
            edges.append((resolve(m.group(1), m.start(1)), resolve(m.group(2), m.start(2))))
    # Pinned: compared with a parameter, or with a pinned reference's tenant_id.
    both_ways = edges + [(right, left) for left, right in edges]
    pinned: set[Reference] = set()
    while more := {
        left
        for left, right in both_ways
        if isinstance(left, Reference)
        and left not in pinned
        and (isinstance(right, int) or right in pinned)
    }:
        pinned |= more
    found.tenant_parameters |= {
        right for left, right in both_ways if isinstance(left, Reference) and isinstance(right, int)
    }

    for reference in found.references:
        if reference.insert:
            _check_insert(text, reference, found)
        elif reference not in pinned:
            found.problems.append(
                f"{reference.table} (as {reference.name}) is not filtered by {TENANT_COLUMN} = $n"
            )
    for m in _CONFLICT_TARGET.finditer(text):
        if _split_top(m.group(1))[0] != TENANT_COLUMN:
            found.problems.append(f"on conflict ({m.group(1)}) does not start with tenant_id")
    return found


def _check_insert(text: str, reference: Reference, found: Analysis) -> None:
    after = text[reference.position + len(reference.table) :]
    columns = re.match(r"\s*(?:as\s+\w+\s*)?\(([^)]*)\)\s*", after)
    names = _split_top(columns.group(1)) if columns else []
    if TENANT_COLUMN not in names:
        found.problems.append(f"insert into {reference.table} names no {TENANT_COLUMN} column")
        return
    assert columns is not None
    rest = after[columns.end() :]
    if rest.startswith("values"):
        group = re.match(r"values\s*\(", rest)
        assert group is not None
        depth, end = 1, group.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(rest[end], 0)
            end += 1
        values = _split_top(rest[group.end() : end - 1])
    elif rest.startswith("select"):
        items = re.sub(r"^select\s+", "", rest)
        depth, end = 0, 0
        while end < len(items) and not (depth == 0 and _FROM.match(items, end)):
            depth += {"(": 1, ")": -1}.get(items[end], 0)
            end += 1
        values = _split_top(items[:end])
    else:
        values = []
    index = names.index(TENANT_COLUMN)
    value = values[index] if index < len(values) else ""
    if re.fullmatch(r"\$\d+", value):
        found.tenant_parameters.add(int(value[1:]))
    else:
        found.problems.append(
            f"insert into {reference.table}: the {TENANT_COLUMN} inserted is {value or '?'!r},"
            " not a parameter"
        )


# --- statements that are global by design ---------------------------------------------------


@dataclass(frozen=True)
class Global:
    """A statement that does not filter by tenant, and why that is right."""

    pattern: str  # matched against the whole normalized statement
    reason: str
    tenant_parameter: int | None = None  # the $n that names the tenant, when one does
    names_tenant_tables: bool = False  # only then may it name one
    always: bool = True  # the workload below always sends it


GLOBAL_STATEMENTS = (
    Global(
        r"select \* from api_keys where key_id = \$1",
        "the API key lookup (store/api_keys.find): a presented key names its id, not its"
        " tenant; the tenant is the one of the row found",
        names_tenant_tables=True,
    ),
    Global(
        r"select \(select lock_contacts\(\$1, \$2::text\[\]\)\)",
        "the contacts' advisory locks (store/locks.py, migration 0009): no rows; keyed by a"
        " hash of tenant and contact",
        tenant_parameter=1,
    ),
    Global(
        r"select pg_advisory_xact_lock\(hashtextextended\(\$1 \|\| chr\(2\) \|\| \$2, 0\)\)",
        "a journey definition's advisory lock (store/locks.py): keyed by tenant and journey",
        tenant_parameter=1,
    ),
    Global(
        r"select \* from contact_histories\(\$1, \$2::text\[\], \$3::timestamptz\)",
        "a contact's history (store/decisions.py, migration 0010): a function whose body"
        " test_every_stored_statement_filters_by_tenant checks as a statement",
        tenant_parameter=1,
    ),
    Global(
        r"select \* from contact_histories\(\$1, \$2::text\[\], \$3::timestamptz\),"
        r" derived_rows\(\$1, \$2::text\[\], \$3::timestamptz\)",
        "a re-decision's histories and the rows derived before (store/decisions.py, migrations"
        " 0010 and 0011): functions whose bodies test_every_stored_statement_filters_by_tenant"
        " checks as statements",
        tenant_parameter=1,
    ),
    Global(
        r"select write_decision\(\$1, \$2, (\$\d+::[a-z_]+\[\], ){13}\$16\)",
        "what a re-decision writes (store/decisions.py, migration 0012): a function whose"
        " statements test_every_stored_statement_filters_by_tenant checks",
        tenant_parameter=1,
    ),
    Global(
        r"select append_conversion_events\(\$1, \$2::smallint\[\], \$3::text\[\], \$4\)",
        "conversion events of a value amendment (store/outbox.py, migration 0012): a function"
        " whose statements test_every_stored_statement_filters_by_tenant checks",
        tenant_parameter=1,
        always=False,
    ),
    Global(
        r"listen jc_conversion_events",
        "the one LISTEN connection of a process (notifier.py), for every tenant's streams",
    ),
    Global(r"select 1", "the health probe (db_watch.py): whether the database answers"),
    Global(
        r"select ensure_month_partitions\('', \$1::timestamptz\[\]\)"
        r" \+ ensure_month_partitions\('', \$1::timestamptz\[\]\)",
        "monthly partitions created ahead (store/partitions.py, maintenance.py): DDL for every"
        " tenant; on Citus the coordinator would create them",
    ),
    Global(
        r"select max\(retained_from\) from retention_runs",
        "where raw history begins after retention (store/retention.py), read by a rebuild",
    ),
    Global(
        r"select pg_export_snapshot\(\)",
        "a report shares its snapshot with its second connection (store/reports.py): the"
        " snapshot of a transaction that reads one tenant",
        always=False,
    ),
    Global(
        r"set transaction snapshot ''",
        "a report's second connection takes the first one's snapshot (store/reports.py);"
        " its statements filter by tenant themselves",
        always=False,
    ),
    Global(
        r"begin( isolation level [a-z ]+)?;?|commit;?|rollback;?",
        "transaction control (asyncpg's Transaction, db.transaction)",
    ),
    Global(
        r"set transaction isolation level repeatable read, read only"
        r"|set local plan_cache_mode = force_custom_plan"
        r"|set local jit = off",
        "a report's snapshot and planner setting (store/reports.py): no rows",
    ),
    Global(
        r"analyze [a-z_]+(, [a-z_]+)*",
        "planner statistics refreshed by a rebuild (store/rebuild.py): reads no rows for a"
        " caller; on Citus ANALYZE runs on every shard",
    ),
    Global(
        r".*\bpg_catalog\..*|select current_setting\(''\) as cur, set_config\('', '', false\)"
        r" as new|select set_config\('', \$1, false\)",
        "asyncpg looking up type OIDs in pg_catalog (the jsonb codec of each new connection,"
        " db.py), with JIT off meanwhile",
        always=False,
    ),
)


def global_statement(text: str) -> Global | None:
    return next((g for g in GLOBAL_STATEMENTS if re.fullmatch(g.pattern, text)), None)


# --- the schema -------------------------------------------------------------------------------

_TABLES = """
select c.relname as table_name,
    (select a.attnotnull from pg_attribute a where a.attrelid = c.oid
        and a.attname = 'tenant_id' and not a.attisdropped) as tenant_not_null
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and c.relkind in ('r', 'p')
order by 1
"""
_CONSTRAINTS = """
select c.relname as table_name, k.conname, k.contype,
    array(select a.attname from unnest(k.conkey) with ordinality as u(attnum, ord)
        join pg_attribute a on a.attrelid = k.conrelid and a.attnum = u.attnum
        order by u.ord) as columns,
    array(select a.attname from unnest(k.confkey) with ordinality as u(attnum, ord)
        join pg_attribute a on a.attrelid = k.confrelid and a.attnum = u.attnum
        order by u.ord) as referenced
from pg_constraint k
join pg_class c on c.oid = k.conrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public' and k.contype in ('p', 'u', 'f', 'x')
order by 1, 2
"""
_INDEXES = """
select c.relname as table_name, x.relname as index_name, i.indisunique,
    array(select coalesce(a.attname, '(expression)')
        from unnest(i.indkey::int2[]) with ordinality as u(attnum, ord)
        left join pg_attribute a on a.attrelid = i.indrelid and a.attnum = u.attnum
        where u.ord <= i.indnkeyatts order by u.ord) as columns
from pg_index i
join pg_class c on c.oid = i.indrelid
join pg_class x on x.oid = i.indexrelid
join pg_namespace n on n.oid = c.relnamespace
where n.nspname = 'public'
order by 1, 2
"""


async def tenant_tables(conn: asyncpg.Connection) -> set[str]:
    """The tables of the migrated schema that have a tenant_id column."""
    return {r["table_name"] for r in await conn.fetch(_TABLES) if r["tenant_not_null"] is not None}


async def tenant_tables_of(database_url: str) -> set[str]:
    """tenant_tables, on a connection of its own (not captured)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await tenant_tables(conn)
    finally:
        await conn.close()


async def test_every_key_starts_with_the_tenant(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tables = await conn.fetch(_TABLES)
        constraints = await conn.fetch(_CONSTRAINTS)
        indexes = await conn.fetch(_INDEXES)
    finally:
        await conn.close()
    names = {r["table_name"] for r in tables}
    assert {"journeys", "touchpoints", "goal_events", "awards", "api_keys"} <= names
    assert names >= GLOBAL_TABLES, "a global table of the allow-list is gone: drop it there"

    problems: list[str] = []
    for row in tables:
        if row["table_name"] in GLOBAL_TABLES:
            continue
        if row["tenant_not_null"] is None:
            problems.append(f"table {row['table_name']} has no {TENANT_COLUMN} column")
        elif not row["tenant_not_null"]:
            problems.append(f"{row['table_name']}.{TENANT_COLUMN} may be null")
    kinds = {"p": "primary key", "u": "unique constraint", "f": "foreign key", "x": "exclusion"}
    for row in constraints:
        if row["table_name"] in GLOBAL_TABLES:
            continue
        columns, referenced = list(row["columns"]), list(row["referenced"])
        if columns[:1] != [TENANT_COLUMN] or (
            row["contype"] == "f" and referenced[:1] != [TENANT_COLUMN]
        ):
            problems.append(
                f"{kinds[row['contype']]} {row['conname']} of {row['table_name']}"
                f" ({', '.join(columns)}"
                + (f" -> {', '.join(referenced)}" if referenced else "")
                + f") does not start with {TENANT_COLUMN}"
            )
    unique = [r for r in indexes if r["indisunique"] and r["table_name"] not in GLOBAL_TABLES]
    assert unique, "no unique index found: the catalog query is wrong"
    for row in unique:
        if list(row["columns"])[:1] != [TENANT_COLUMN]:
            problems.append(
                f"unique index {row['index_name']} of {row['table_name']}"
                f" ({', '.join(row['columns'])}) does not start with {TENANT_COLUMN}"
            )
    assert not problems, "\n".join(problems)


# --- the statements in store/sql/ ------------------------------------------------------------


def stored_statements() -> dict[str, str]:
    folder = resources.files("journey_conversions.store").joinpath("sql")
    return {
        entry.name: entry.read_text(encoding="utf-8")
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    }


# Functions holding statements of the store's, kept in the database for a setting of their own
# (migrations 0010 to 0012): checked as the statements of store/sql/ are, with their arguments
# in the place of $1.. (the tenant first). A body is one `return query`, or a block of
# statements, each checked on its own (`if ... then` and `end if` are not statements; a PERFORM
# calls a function, pg_notify or one of these, and reads no table itself).
STATEMENT_FUNCTIONS = (
    "append_conversion_events",
    "contact_histories",
    "derived_rows",
    "write_decision",
)


def body_statements(body: str) -> list[str]:
    """The statements of a PL/pgSQL function body (comments dropped, lower-cased)."""
    text = normalize(body)
    returned = re.search(r"return query(.*);\s*end\s*$", text)
    if returned:
        return [returned.group(1)]
    found = re.search(r"\bbegin\b(.*)\bend;?\s*$", text)
    assert found, f"not a block of statements: {body}"
    block = re.sub(r"\bif\b((?!\bthen\b).)*\bthen\b|\bend if\b", ";", found.group(1))
    statements = (statement.strip() for statement in block.split(";"))
    return [s for s in statements if s and not s.startswith("perform ")]


async def function_statements(database_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "select proname, prosrc, proargnames, pronargs from pg_proc"
            " where proname = any($1::text[]) and pronamespace = 'public'::regnamespace",
            list(STATEMENT_FUNCTIONS),
        )
    finally:
        await conn.close()
    assert sorted(r["proname"] for r in rows) == sorted(STATEMENT_FUNCTIONS)
    statements = {}
    for row in rows:
        # The arguments only: not the columns of `returns table`.
        arguments = row["proargnames"][: row["pronargs"]]
        for number, body in enumerate(body_statements(row["prosrc"]), start=1):
            statements[f"function {row['proname']} #{number}"] = functools.reduce(
                lambda text, argument: re.sub(rf"\b{argument[1]}\b", f"${argument[0]}", text),
                enumerate(arguments, start=1),
                body,
            )
    return statements


async def test_every_stored_statement_filters_by_tenant(database_url: str) -> None:
    tables = await tenant_tables_of(database_url)
    statements = stored_statements() | await function_statements(database_url)
    assert len(statements) >= 10
    problems: list[str] = []
    for name, statement in sorted(statements.items()):
        found = analyze(statement, tables)
        if not found.references:
            problems.append(f"{name}: names no tenant table")
        problems.extend(f"{name}: {problem}" for problem in found.problems)
        if found.tenant_parameters != {1}:  # every file says "$1 tenant"
            problems.append(f"{name}: the tenant is bound to {sorted(found.tenant_parameters)}")
    assert not problems, "\n".join(problems)


# --- the statements the server sends ---------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    query: str
    args: Any


@dataclass(eq=False)  # hashable: asyncpg keeps its loggers in a set
class Capture:
    """Every statement sent on the connections it was added to."""

    sent: list[Sent] = field(default_factory=list)

    def __call__(self, record: LoggedQuery) -> None:
        self.sent.append(Sent(record.query, record.args))

    def add_to(self, conn: asyncpg.Connection) -> None:
        conn.add_query_logger(self)


@pytest.fixture
async def captured_app(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[App, Capture, Stub]]:
    """A server that checks keys, every statement of whose connections is captured: the pool's
    (db.create_pool runs db._init_connection on each connection it opens, for as long as the
    test runs) and the notifier's LISTEN connection (asyncpg.connect, while the server starts)."""
    capture = Capture()
    original_init = db._init_connection

    async def init_and_capture(conn: asyncpg.Connection) -> None:
        capture.add_to(conn)
        await original_init(conn)

    original_connect = asyncpg.connect

    async def connect_and_capture(*args: Any, **kwargs: Any) -> asyncpg.Connection:
        conn: asyncpg.Connection = await original_connect(*args, **kwargs)
        capture.add_to(conn)
        return conn

    monkeypatch.setattr(db, "_init_connection", init_and_capture)
    with monkeypatch.context() as starting:
        starting.setattr(asyncpg, "connect", connect_and_capture)
        app = await build(config_module.from_values(KEYED_SERVER), database_url, "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield app, capture, service_pb2_grpc.JourneyConversionsServiceStub(channel)
    finally:
        await app.stop(grace=1)


async def read_stream(stub: Stub, metadata: Sequence[tuple[str, str]]) -> None:
    call = stub.StreamConversionEvents(
        pb.StreamConversionEventsRequest(after_position=0),
        metadata=metadata,
        timeout=STREAM_DEADLINE_SECONDS,
    )
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
            raise


async def call(case: Case, stub: Stub, ids: Ids, metadata: Sequence[tuple[str, str]]) -> None:
    if case.rpc == "StreamConversionEvents":
        await read_stream(stub, metadata)  # the matrix's waits a whole second
    else:
        await reply(case, stub, ids, tuple(metadata))


async def more_of_b(stub: Stub, b: Sequence[tuple[str, str]]) -> None:
    """B's writes that take the paths the matrix does not: an Evaluate-goal step not met, a
    redefinition (new window, a
    second version on steps and paths), a repeated request, a conversion's new value, a late
    touchpoint before a goal event, an amendment, an exit, and a full report of one version."""
    i = B_IDS
    # Evaluate-goal before the goal event: the kept events say not met, so it looks among
    # those retention dropped (goal_met_event.sql).
    early = await stub.EvaluateGoal(
        pb.EvaluateGoalRequest(
            event_id="b-evaluate-early",
            enrollment_id=i.enrollment,
            step_id="evaluate",
            evaluate_time=ago(days=2),
        ),
        metadata=b,
    )
    assert early.goal_met is False
    redefined = define_journey(
        i.journey,
        [message(i.message, step_id="welcome"), message("b-sms", "SMS", step_id="nudge")],
        goal("ORDER_PLACED"),
        version=2,
        request_id="b-redefine",
        window_days=20,
    )
    redefined.journey.versions[0].messages[1].path = "b"
    await stub.DefineJourney(redefined, metadata=b)
    await stub.DefineJourney(redefined, metadata=b)  # the stored response
    await stub.DefineConversion(
        pb.DefineConversionRequest(
            request_id="b-revalue",
            conversion=conversions_pb2.ConversionDefinition(
                conversion_id=i.conversion,
                journey_id=i.journey,
                name="Booked meeting",
                value=journey_pb2.Money(currency_code="EUR", amount_micros=30_000_000),
            ),
        ),
        metadata=b,
    )
    late = touchpoint("b-late", i.contact, i.journey, i.message, ago(days=2, hours=1), "EMAIL")
    for status in (events_pb2.ITEM_STATUS_ACCEPTED, events_pb2.ITEM_STATUS_DUPLICATE):
        # The repeat reads the stored touchpoint back (stored_touchpoints.sql).
        batch = await stub.BatchRecordTouchpoints(
            pb.BatchRecordTouchpointsRequest(touchpoints=[late]), metadata=b
        )
        assert [r.status for r in batch.results] == [status]
    amendment = goal_event(
        "b-refund",
        i.contact,
        "ORDER_UPDATED",
        ago(hours=2),
        value=journey_pb2.Money(currency_code="EUR", amount_micros=1_000_000),
    )
    amendment.amends_event_id = i.goal_event
    await stub.RecordGoalEvent(pb.RecordGoalEventRequest(goal_event=amendment), metadata=b)
    await stub.ExitJourney(exit_(i.enrollment, ago(hours=1)), metadata=b)
    await stub.GetJourneyReport(
        pb.GetJourneyReportRequest(
            journey_id=i.journey,
            version=1,
            baseline_version=1,
            start_time=ago(days=10),
            end_time=timestamp(NOW + timedelta(days=1)),
            time_zone="Europe/Paris",
            view=pb.REPORT_VIEW_FULL,
        ),
        metadata=b,
    )


async def test_every_statement_the_server_sends_filters_by_tenant(
    database_url: str, captured_app: tuple[App, Capture, Stub]
) -> None:
    app, capture, stub = captured_app
    _, a_token = await create_key(database_url, A_TENANT)
    _, b_token = await create_key(database_url, B_TENANT)
    a, b = bearer(a_token), bearer(b_token)

    # Every RPC: B's data through the matrix's writes and reads; A naming B's ids and ids that
    # exist nowhere (reads, refused writes, and writes that make A's own data); then the paths
    # the matrix does not take, a health probe and a rebuild of B's derived rows.
    await build_b(stub, b)
    for case in READS:
        await call(case, stub, B_IDS, b)
    for case in CASES:
        for ids in (B_IDS, ABSENT_IDS):
            await call(case, stub, ids, a)
    await more_of_b(stub, b)
    assert (await app.watch.probe())[0] is True
    await rebuild.rebuild_tenant(app.pool, B_TENANT)
    await asyncio.sleep(0)  # loggers are called soon after each statement
    service = pb.DESCRIPTOR.services_by_name["JourneyConversionsService"]
    called = {case.rpc for case in CASES}
    assert called >= {m.name for m in service.methods}, "an RPC the workload does not call"

    tables = await tenant_tables_of(database_url)
    problems: list[str] = []
    seen: set[Global] = set()
    checked: dict[str, Analysis] = {}
    for sent in capture.sent:
        text = normalize(sent.query)
        found = checked.get(text) or analyze(sent.query, tables)
        checked[text] = found
        allowed = global_statement(text)
        if allowed is not None and (allowed.names_tenant_tables or not found.references):
            seen.add(allowed)
            parameters = {allowed.tenant_parameter} if allowed.tenant_parameter else set()
        elif not found.references:
            problems.append(f"names no tenant table, and is not in GLOBAL_STATEMENTS: {text}")
            continue
        elif found.problems:
            problems.extend(f"{problem}: {text}" for problem in found.problems)
            continue
        else:
            parameters = set(found.tenant_parameters)
        problems.extend(
            f"${n} = {value!r} is no tenant of the workload: {text}"
            for n in sorted(parameters)
            for value in bound(sent.args, n)
            if value not in TENANTS
        )
    problems.extend(
        f"GLOBAL_STATEMENTS entry never sent (stale?): {g.pattern}"
        for g in GLOBAL_STATEMENTS
        if g.always and g not in seen
    )
    sent_texts = set(checked)
    problems.extend(
        f"store/sql/{name} was not sent by the workload: extend it"
        for name, statement in sorted(stored_statements().items())
        if normalize(statement) not in sent_texts
    )
    assert len(checked) >= 60, f"only {len(checked)} distinct statements captured"
    assert not problems, "\n".join(dict.fromkeys(problems))


def bound(args: Any, n: int) -> list[object]:
    """The values bound to $n: one per row for executemany (a sequence of rows)."""
    if args and all(isinstance(row, tuple | list) for row in args):
        return [row[n - 1] for row in args]
    return [args[n - 1]]


# --- the check can fail -------------------------------------------------------------------------

_MUTATIONS = (
    # (statement file or text, what is replaced, by what)
    ("final_amended_awards.sql", "where x.tenant_id = $1 and", "where"),
    ("final_amended_awards.sql", "where a.tenant_id = $1 and", "where"),
    ("report_awards.sql", "where tenant_id = $1 and", "where"),
    ("report_awards.sql", "tenant_id = $1", "tenant_id = any($1::text[])"),
    (
        "report_touchpoints.sql",
        "from touchpoints\n        where tenant_id = $1 and",
        "from touchpoints\n        where",
    ),
    ("report_engaged_edges.sql", "where t.tenant_id = $1 and", "where"),
    (
        "report_enrollments.sql",
        "where e.tenant_id = $1 and",
        "where",
    ),
    (
        "insert_touchpoints.sql",
        "join enrollments e on e.tenant_id = $1 and",
        "join enrollments e on",
    ),
    ("insert_touchpoints.sql", "select $1, e, c, o from unnest", "select $2, e, c, o from unnest"),
    ("insert_touchpoints.sql", "select $1, x.* from unnest", "select $2, x.* from unnest"),
    ("insert_goal_events.sql", "select $1, e, c, o from unnest", "select $2, e, c, o from unnest"),
    ("stored_touchpoints.sql", "where i.tenant_id = $1 and", "where"),
    ("touchpoint_counts_rebuild.sql", "where tenant_id = $1", "where true"),
    ("report_awards.sql", "where tenant_id = $1 and", "where tenant_id = $1 or"),
    (
        "report_reach.sql",
        "where r.tenant_id = $1 and",
        "where",
    ),
    ("report_reach.sql", "where c.tenant_id = $1 and", "where (c.tenant_id = $1 or c.holdout) and"),
    ("select * from api_keys where $1::text is null or tenant_id = $1", "", ""),
    (
        "select exists (select 1 from goal_events where tenant_id = $1 and contact_id = $2)"
        " or exists (select 1 from step_marks where tenant_id = $1 and contact_id = $2)",
        "from step_marks where tenant_id = $1 and",
        "from step_marks where",
    ),
    (
        "select * from touchpoints t where t.journey_id = $2"
        " and exists (select 1 from goal_events g where g.tenant_id = $1)",
        "",
        "",
    ),
    (
        "select e.enrollment_id from enrollments e, touchpoints t where e.tenant_id = $1",
        "",
        "",
    ),
)
_MUTATION_TABLES = {
    "api_keys",
    "awards",
    "enrollments",
    "goal_events",
    "journey_messages",
    "journeys",
    "step_marks",
    "touchpoint_counts",
    "touchpoints",
    "cohort_counts",
    "enrollment_reach",
    "touchpoint_ids",
    "goal_event_ids",
}


@pytest.mark.parametrize(("source", "old", "new"), _MUTATIONS)
def test_the_check_catches_a_missing_filter(source: str, old: str, new: str) -> None:
    """Each real statement passes; with its tenant filter removed or weakened it fails (an
    empty `old` marks a statement written to fail as it is)."""
    statement = stored_statements().get(source, source)
    if old:
        assert not _faults(statement), f"{source} should pass as it is"
        assert old in statement, f"{old!r} is not in {source}"
    assert _faults(statement.replace(old, new, 1) if old else statement)


def _faults(statement: str) -> list[str]:
    """What the stored-statement test holds against a statement: its problems, and a tenant
    parameter other than $1."""
    return _faults_among(statement, _MUTATION_TABLES)


# Statements of the functions (STATEMENT_FUNCTIONS, as function_statements reads them), each
# with its tenant filter or tenant value removed.
_FUNCTION_MUTATIONS = (
    ("write_decision", "where t.tenant_id = $1 and t.goal_event_id", "where t.goal_event_id"),
    ("write_decision", "select $1, a.enrollment_id,", "select a.tenant_id, a.enrollment_id,"),
    ("write_decision", "join enrollments e on e.tenant_id = $1 and", "join enrollments e on"),
    (
        "write_decision",
        "left join awards a on k.conversion_changed and a.tenant_id = $1",
        "left join awards a on k.conversion_changed",
    ),
    (
        "append_conversion_events",
        "select $1, _last - cardinality",
        "select $2, _last - cardinality",
    ),
    ("derived_rows", "where a.tenant_id = $1 and", "where"),
)


@pytest.mark.parametrize(("function", "old", "new"), _FUNCTION_MUTATIONS)
async def test_the_check_catches_a_missing_filter_in_a_function(
    database_url: str, function: str, old: str, new: str
) -> None:
    statements = await function_statements(database_url)
    tables = _MUTATION_TABLES | {"goal_outcomes", "outbox_heads", "conversion_events"}
    [statement] = [
        text
        for name, text in statements.items()
        if name.startswith(f"function {function} #") and old in text
    ]
    assert not analyze(statement, tables).problems
    assert _faults_among(statement.replace(old, new, 1), tables)


def _faults_among(statement: str, tables: set[str]) -> list[str]:
    found = analyze(statement, tables)
    wrong_parameter = [] if found.tenant_parameters == {1} else [f"{found.tenant_parameters}"]
    return found.problems + wrong_parameter
