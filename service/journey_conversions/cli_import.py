"""`journey-conversions import`: historical enrollments, touchpoints or goal events loaded from
an NDJSON or CSV export through the batch path the RPCs use (store.ingest), written directly
to the database (an operator's task, like `keys`).

Each row is the JSON a gRPC client sends for one item, read by import_rows (NDJSON, or CSV
with a header row naming the fields), then parsed and checked exactly as the servicer does
(parse.py), and written in batches, one transaction each. Rows are
accepted, duplicates (the id is already stored with the same payload: re-running an import
changes nothing) or rejected; each rejected row is written to the rejected file with its line
number and reasons.

An enrollment row may carry exit_time and exit_reason: the enrollment is entered, then ended,
in the same transaction.

`--history` accepts event times older than the allowed lateness. It is refused on a live
tenant (one with an enrollment, touchpoint or goal event within the allowed lateness), since
re-deciding old history would race live traffic; contacts are re-decided over their whole
history, and the tenant's derived rows are rebuilt at the end (as `rebuild --tenant` does).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TextIO

import asyncpg
from google.protobuf.message import Message
from journeys.conversions.v1 import events_pb2

from journey_conversions import cli_database, clock, db, domain, import_rows, parse
from journey_conversions.errors import InvalidArgument, ServiceError
from journey_conversions.store import ingest, partitions, rebuild, retention

KINDS = ("enrollments", "touchpoints", "goal_events")
FORMATS = ("ndjson", "csv")
DEFAULT_BATCH = 500
# Without a terminal, a progress line every this many batches (and at the end).
PLAIN_PROGRESS_EVERY = 20
# The earliest event time --history accepts: any time Timestamp can hold (parse checks it).
_ANY_PAST = datetime(1, 1, 1, tzinfo=UTC)


class Refused(Exception):
    """The import cannot run as asked (exit status 2)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the NDJSON or CSV export to import")
    parser.add_argument("--kind", required=True, choices=KINDS, help="what the rows are")
    parser.add_argument("--tenant", required=True, help="the tenant the rows belong to")
    parser.add_argument(
        "--format", choices=FORMATS, help="ndjson or csv (default: from the file's extension)"
    )
    parser.add_argument(
        "--rejected",
        type=Path,
        help="where rejected rows go, one JSON object a line with their line number and"
        " reasons (default: <file>.rejected.ndjson; removed when nothing is rejected)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH,
        help=f"rows per transaction, 1-{parse.MAX_BATCH} (default {DEFAULT_BATCH})",
    )
    parser.add_argument(
        "--history",
        action="store_true",
        help="accept event times older than the allowed lateness; refused on a live tenant"
        " (data within the allowed lateness); rebuilds the tenant's derived rows at the end",
    )
    cli_database.add_arguments(parser)
    cli_database.add_time_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """Exit status 0 when every row was accepted or a duplicate, 1 when some were rejected, 2
    when the import was refused (bad arguments, unreadable file, live tenant with --history),
    3 when it failed part way (the database): committed batches stay, and a re-run resumes."""
    try:
        parse.tenant(args.tenant, "")
    except InvalidArgument:
        parser.error("--tenant must be 1-64 letters, digits, '_', '.' or '-'")
    if not 1 <= args.batch_size <= parse.MAX_BATCH:
        parser.error(f"--batch-size must be between 1 and {parse.MAX_BATCH}")
    source: Path = args.file
    form = args.format or _format_of(source)
    if form is None:
        parser.error("cannot tell the format from the file name: give --format ndjson or csv")
    if not source.is_file():
        parser.error(f"no file {source}")
    policy = cli_database.time_policy(args)
    rejected_path = args.rejected or source.with_name(source.name + ".rejected.ndjson")
    job = Job(args.kind, args.tenant, source, form, rejected_path, args.batch_size, args.history)
    try:
        total = import_rows.count_rows(form, source)
    except (OSError, UnicodeDecodeError) as error:
        parser.error(f"cannot read {source}: {error}")
    try:
        out = open(rejected_path, "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    except OSError as error:
        parser.error(f"cannot write {rejected_path}: {error.strerror}")
    # The files are opened here, not on the event loop (the import is the only work there).
    try:
        with out, import_rows.open_text(source) as stream:

            async def work(url: str) -> Summary:
                pool = await db.create_pool(url, 1, 2)
                try:
                    return await job.run(pool, policy, stream, out, total)
                finally:
                    await pool.close()

            summary = cli_database.run_migrated(args, work)
    except Refused as error:
        print(f"journey-conversions import: {error}", file=sys.stderr)
        return 2
    except (ServiceError, OSError, asyncpg.PostgresError) as error:
        # Batches committed so far stay; a re-run finds them duplicates and goes on.
        print(f"journey-conversions import: failed: {error}", file=sys.stderr)
        return 3
    finally:
        if rejected_path.exists() and rejected_path.stat().st_size == 0:
            rejected_path.unlink()  # nothing rejected (or nothing done)
    if args.json:
        print(json.dumps(summary.described()))
    else:
        print(summary.line())
    return 1 if summary.rejected else 0


def _format_of(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in (".ndjson", ".jsonl", ".json"):
        return "ndjson"
    if suffix == ".csv":
        return "csv"
    return None


# --- parsing and writing --------------------------------------------------------------------


def _reasons(error: ServiceError) -> list[str]:
    if error.violations:
        return [f"{v.field}: {v.description}" for v in error.violations]
    return [f"{error.reason}: {error.message}"]


def _row_id(kind: str, message: Message | None) -> str:
    if message is None:
        return ""
    return str(getattr(message, "enrollment_id" if kind == "enrollments" else "event_id"))


@dataclass
class _Parsed:
    """A batch's rows that parsed, with their domain values (and an enrollment's exit)."""

    rows: list[import_rows.Row] = field(default_factory=list)
    items: list[Any] = field(default_factory=list)
    exits: list[domain.EnrollmentExit | None] = field(default_factory=list)


def _parse_row(
    kind: str, row: import_rows.Row, bounds: clock.Bounds
) -> tuple[Any, domain.EnrollmentExit | None, list[str]]:
    """The domain value of a row (and an enrollment's exit), or the reasons it is wrong."""
    checker = parse.Checker()
    message = row.message
    exit_: domain.EnrollmentExit | None = None
    if isinstance(message, events_pb2.Enrollment):
        item: Any = parse.enrollment(checker, message, bounds)
        if message.HasField("exit_time") or message.exit_reason:
            exit_time = checker.timestamp("exit_time", message, bounds)
            reason = checker.enum("exit_reason", domain.ExitReason, message.exit_reason)
            if item is not None and exit_time is not None and reason is not None:
                if exit_time < item.enter_time:
                    checker.fail("exit_time", "is before enter_time")
                exit_ = domain.EnrollmentExit(message.enrollment_id, exit_time, reason)
    elif isinstance(message, events_pb2.Touchpoint):
        item = parse.touchpoint(checker, message, bounds)
    else:
        assert isinstance(message, events_pb2.GoalEvent)
        item = parse.goal_event(checker, message, bounds)
    if checker.violations or item is None:
        return None, None, [f"{v.field}: {v.description}" for v in checker.violations]
    return item, exit_, []


async def _write(
    conn: asyncpg.Connection, kind: str, tenant: str, parsed: _Parsed, horizon: datetime
) -> list[ingest.ItemResult]:
    if kind == "touchpoints":
        return await ingest.record_touchpoints(conn, tenant, parsed.items, horizon)
    if kind == "goal_events":
        return await ingest.record_goal_events(conn, tenant, parsed.items, horizon)
    entered = await ingest.enter_enrollments(conn, tenant, parsed.items, horizon)
    # Exits of the entries that stand (new or repeated); an exit before the entry was refused
    # when parsing, so an accepted entry's exit is never rejected (at worst a duplicate).
    ending = [
        (index, exit_)
        for index, (exit_, result) in enumerate(zip(parsed.exits, entered, strict=True))
        if exit_ is not None and result.status != ingest.ItemStatus.REJECTED
    ]
    if not ending:
        return entered
    ended = await ingest.exit_enrollments(conn, tenant, [x for _, x in ending], horizon)
    results = list(entered)
    for (index, _), result in zip(ending, ended, strict=True):
        if result.status == ingest.ItemStatus.REJECTED:
            results[index] = result
        elif result.status == ingest.ItemStatus.ACCEPTED:
            results[index] = ingest.ACCEPTED  # the entry or its exit is new
    return results


# --- the import -----------------------------------------------------------------------------


@dataclass
class Summary:
    kind: str
    tenant: str
    file: Path
    rows: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    rejected_file: Path | None = None
    history: bool = False
    rebuilt: bool = False

    def described(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "tenant": self.tenant,
            "file": str(self.file),
            "rows": self.rows,
            "accepted": self.accepted,
            "duplicate": self.duplicate,
            "rejected": self.rejected,
            "rejected_file": str(self.rejected_file) if self.rejected_file else None,
            "history": self.history,
            "rebuilt": self.rebuilt,
        }

    def line(self) -> str:
        text = (
            f"{self.kind} of tenant {self.tenant} from {self.file}: {self.rows} rows,"
            f" {self.accepted} accepted, {self.duplicate} duplicate, {self.rejected} rejected"
        )
        if self.rejected_file is not None:
            text += f" (see {self.rejected_file})"
        if self.rebuilt:
            text += "; derived rows rebuilt"
        return text


class Progress:
    """`rows done / total, rows/s` on stderr: rewritten in place on a terminal, otherwise a
    line every PLAIN_PROGRESS_EVERY batches and at the end."""

    def __init__(self, total: int, stream: IO[str] | None = None) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self.batches = 0

    def update(self, done: int, final: bool = False) -> None:
        self.batches += 1
        if not (self.tty or final or self.batches % PLAIN_PROGRESS_EVERY == 0):
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        text = f"{done} rows"
        if self.total:
            text = f"{done}/{self.total} rows ({100 * done / self.total:.0f}%)"
        text += f", {done / elapsed:.0f} rows/s"
        if self.tty:
            self.stream.write(f"\r{text}" + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


@dataclass
class Job:
    kind: str
    tenant: str
    source: Path
    form: str
    rejected_path: Path
    batch_size: int
    history: bool
    # Months whose partitions this job has made sure of: each is ensured once, not per batch.
    months_ready: set[datetime] = field(default_factory=set, init=False)

    async def run(
        self, pool: asyncpg.Pool, policy: clock.TimePolicy, stream: TextIO, out: TextIO, total: int
    ) -> Summary:
        history_from = _ANY_PAST
        if self.history:
            await self._refuse_if_live(pool, policy.bounds(clock.utc_now()).earliest)
            async with db.connection(pool) as conn:
                # Retention dropped the months before: history there would not be kept.
                history_from = await retention.retained_from(conn) or _ANY_PAST
        summary = Summary(self.kind, self.tenant, self.source, history=self.history)
        progress = Progress(total)
        batch: list[import_rows.Row] = []
        for row in import_rows.rows(self.kind, self.form, stream):
            batch.append(row)
            if len(batch) == self.batch_size:
                await self._batch(pool, batch, policy, history_from, summary, out)
                progress.update(summary.rows)
                batch = []
        if batch:
            await self._batch(pool, batch, policy, history_from, summary, out)
        progress.update(summary.rows, final=True)
        out.flush()
        if summary.rejected:
            summary.rejected_file = self.rejected_path
        if self.history and summary.accepted:
            await rebuild.rebuild_tenant(pool, self.tenant)
            summary.rebuilt = True
        return summary

    async def _refuse_if_live(self, pool: asyncpg.Pool, since: datetime) -> None:
        live = await pool.fetchval(
            "select exists (select 1 from enrollments where tenant_id = $1"
            " and (enter_time >= $2 or exit_time >= $2))"
            " or exists (select 1 from touchpoints where tenant_id = $1 and occur_time >= $2)"
            " or exists (select 1 from goal_events where tenant_id = $1 and occur_time >= $2)",
            self.tenant,
            since,
        )
        if live:
            raise Refused(
                f"--history refused: tenant {self.tenant!r} is live (it has enrollments,"
                f" touchpoints or goal events since {since:%Y-%m-%dT%H:%M:%SZ}, within the"
                " allowed lateness); import history before live traffic starts"
            )

    async def _batch(
        self,
        pool: asyncpg.Pool,
        rows: Sequence[import_rows.Row],
        policy: clock.TimePolicy,
        history_from: datetime,
        summary: Summary,
        out: TextIO,
    ) -> None:
        # The time bounds of now, as the servicer takes them for each call.
        now = clock.utc_now()
        bounds, horizon = policy.bounds(now), policy.horizon(now)
        if self.history:
            bounds = clock.Bounds(history_from, bounds.latest)
            horizon = rebuild.ALL_HISTORY  # re-decide the contacts' whole history
        parsed = _Parsed()
        rejected: list[tuple[import_rows.Row, list[str]]] = []
        for row in rows:
            if row.message is None:
                rejected.append((row, [row.error]))
                continue
            item, exit_, reasons = _parse_row(self.kind, row, bounds)
            if reasons:
                rejected.append((row, reasons))
            else:
                parsed.rows.append(row)
                parsed.items.append(item)
                parsed.exits.append(exit_)
        if parsed.items:
            months = {
                partitions.month_start(i.occur_time)
                for i in parsed.items
                if isinstance(i, domain.Touchpoint | domain.GoalEvent)
            } - self.months_ready
            if months:

                async def prepare(conn: asyncpg.Connection) -> int:
                    return await partitions.ensure(conn, months)

                await db.transaction(pool, prepare)  # the months' partitions, committed first
                self.months_ready |= months

            async def work(conn: asyncpg.Connection) -> list[ingest.ItemResult]:
                return await _write(conn, self.kind, self.tenant, parsed, horizon)

            results = await db.transaction(pool, work)
            for row, result in zip(parsed.rows, results, strict=True):
                if result.status == ingest.ItemStatus.ACCEPTED:
                    summary.accepted += 1
                elif result.status == ingest.ItemStatus.DUPLICATE:
                    summary.duplicate += 1
                else:
                    assert result.error is not None
                    rejected.append((row, _reasons(result.error)))
        for row, reasons in sorted(rejected, key=lambda r: r[0].line):
            record = {
                "line": row.line,
                "id": _row_id(self.kind, row.message),
                "reasons": reasons,
                "row": row.raw,
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        summary.rejected += len(rejected)
        summary.rows += len(rows)
