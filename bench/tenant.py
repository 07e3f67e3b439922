"""A realistic tenant for benchmarks, loaded into a migrated database in minutes.

Journeys and named conversions are defined through a real server (DefineJourney and
DefineConversion write them as the service does); enrollments, goal events and touchpoints are
generated column by column and COPied in chunks; then `rebuild_tenant` computes goal outcomes,
awards, credits and per-enrollment facts, as event-by-event writes would have. By default: 200
journeys (sizes skewed, the largest with about a tenth of the enrollments), 1M enrollments, 200k
goal events and 10M touchpoints over the last 90 days. Times are relative to now; everything else
is a function of --seed. Without --target the definitions go through a `journey-conversions
serve` process started on the database for them.

    .venv/bin/python -m bench.tenant --database-url postgresql://postgres@127.0.0.1:5432/jc_bench_mine
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import random
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate, repeat

import asyncpg
import grpc
from journeys.conversions.v1 import conversions_pb2, journey_pb2, service_pb2_grpc
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import db
from journey_conversions.domain import Action, Channel, ExitReason, GoalEventType
from journey_conversions.store import partitions
from journey_conversions.store.rebuild import Rebuilt, rebuild_tenant
from tests.processes import serve

DAY = 86_400.0
CHUNK = 250_000  # rows per COPY
PRODUCTS = tuple(f"p{n:02d}" for n in range(1, 31))
FORMS = tuple(f"form-{n:02d}" for n in range(1, 16))
PAID_PLAN = "plan-pro"  # the product of the "Started paid plan" conversions
DEMO_FORM = "demo"  # the form of the "Requested demo" conversions

_CHANNEL_WEIGHTS = {
    Channel.EMAIL: 50,
    Channel.SMS: 15,
    Channel.MOBILE_PUSH: 15,
    Channel.WEB_PUSH: 5,
    Channel.WHATSAPP: 10,
    Channel.SOCIAL_POST: 3,
    Channel.SOCIAL_AD: 2,
}
# What one send of a message produces: its actions in order, each with the chance that it
# follows the previous one and its mean delay after it in seconds.
_CHAINS: dict[Channel, tuple[tuple[Action, float, float], ...]] = {
    Channel.EMAIL: (
        (Action.DELIVERED, 1.0, 0.0),
        (Action.OPENED, 0.45, 3 * 3600.0),
        (Action.CLICKED, 0.25, 1200.0),
    ),
    Channel.SMS: ((Action.DELIVERED, 1.0, 0.0), (Action.CLICKED, 0.12, 600.0)),
    Channel.MOBILE_PUSH: (
        (Action.DELIVERED, 1.0, 0.0),
        (Action.OPENED, 0.2, 1800.0),
        (Action.CLICKED, 0.3, 60.0),
    ),
    Channel.WEB_PUSH: ((Action.DELIVERED, 1.0, 0.0), (Action.CLICKED, 0.08, 300.0)),
    Channel.SOCIAL_POST: ((Action.CLICKED, 1.0, 0.0),),
    Channel.SOCIAL_AD: ((Action.CLICKED, 1.0, 0.0),),
    Channel.WHATSAPP: (
        (Action.DELIVERED, 1.0, 0.0),
        (Action.READ, 0.7, 3600.0),
        (Action.CLICKED, 0.2, 600.0),
        (Action.REPLIED, 0.2, 900.0),
    ),
}
MACHINE_OPEN_SHARE = 0.3  # of email opens: privacy proxies fetch the pixel on delivery
EXITED_SHARE = 0.68  # given an exit time; about 60% fall before now
OUTSIDE_SHARE = 0.06  # of sends: just before entry or after exit
UNVERSIONED_SHARE = 0.01  # of touchpoints: the gateway did not know the version (0)

TOUCHPOINT_COLUMNS = [
    "tenant_id",
    "event_id",
    "contact_id",
    "journey_id",
    "version",
    "message_id",
    "channel",
    "action",
    "occur_time",
    "machine_generated",
]
ENROLLMENT_COLUMNS = [
    "tenant_id",
    "enrollment_id",
    "contact_id",
    "journey_id",
    "version",
    "enter_time",
    "exit_time",
    "exit_reason",
    "holdout",
]
GOAL_EVENT_COLUMNS = [
    "tenant_id",
    "event_id",
    "contact_id",
    "event_type",
    "occur_time",
    "url",
    "form_id",
    "product_ids",
    "value_currency",
    "value_micros",
]
RAW_TABLES = ("enrollments", "goal_events", "touchpoints")


@dataclass(frozen=True, slots=True)
class TenantSpec:
    """What to generate."""

    tenant_id: str = "bench"
    journeys: int = 200
    enrollments: int = 1_000_000
    touchpoints: int = 10_000_000
    goal_events: int = 200_000
    days: int = 90
    seed: int = 1


@dataclass(frozen=True, slots=True)
class MessagePlan:
    message_id: str
    channel: Channel
    step_id: str
    path: str


@dataclass(frozen=True, slots=True)
class CriterionPlan:
    event_type: GoalEventType  # ORDER_PLACED (values: products, none = any) or FORM_SUBMITTED
    values: tuple[str, ...]

    def message(self) -> journey_pb2.GoalCriterion:
        kind = journey_pb2.GoalEventType.ValueType(int(self.event_type))
        if self.event_type == GoalEventType.FORM_SUBMITTED:
            return journey_pb2.GoalCriterion(event_type=kind, form_ids=self.values)
        return journey_pb2.GoalCriterion(event_type=kind, product_ids=self.values)


@dataclass(frozen=True, slots=True)
class ConversionPlan:
    conversion_id: str
    name: str
    trigger: CriterionPlan | None
    value_eur_micros: int | None
    award_on_goal: bool


@dataclass(frozen=True, slots=True)
class JourneyPlan:
    journey_id: str
    weight: float
    versions: tuple[tuple[MessagePlan, ...], ...]  # version 1 first
    version_starts: tuple[float, ...]  # epoch seconds from which each version takes entries
    goal: CriterionPlan
    window_days: int | None  # None: the default window
    exclude_machine_opens: bool
    holdout_share: float
    conversions: tuple[ConversionPlan, ...]


def plan_journeys(spec: TenantSpec, now: float) -> list[JourneyPlan]:
    """The journeys, largest first: the first has every feature a report shows (three versions,
    paths, a holdout group, named conversions)."""
    rng = random.Random(f"{spec.seed}:journeys")
    begin = now - spec.days * DAY
    channels, weights = list(_CHANNEL_WEIGHTS), list(_CHANNEL_WEIGHTS.values())
    plans = []
    for index in range(spec.journeys):
        first = index == 0
        has_paths = first or rng.random() < 0.3
        pool = [
            MessagePlan(
                f"m{n:02d}",
                channel,
                f"s{step}",
                rng.choice("ab") if has_paths and step >= 3 else "",
            )
            for n, channel in enumerate(rng.choices(channels, weights, k=rng.randint(4, 12)), 1)
            for step in (rng.randint(1, 5),)
        ]
        count = 3 if first else rng.choice((1, 1, 2, 2, 3))
        versions = tuple(
            tuple(sorted(rng.sample(pool, rng.randint(3, min(8, len(pool)))), key=_message_key))
            for _ in range(count)
        )
        later = (
            begin + spec.days * DAY * (k / count) * rng.uniform(0.8, 1.0) for k in range(1, count)
        )
        starts = [begin, *sorted(later)]
        if first or rng.random() < 0.6:
            products: tuple[str, ...] = ()
            if not first and rng.random() < 0.5:
                products = tuple(sorted(rng.sample(PRODUCTS, rng.randint(1, 3))))
            goal = CriterionPlan(GoalEventType.ORDER_PLACED, products)
        else:
            goal = CriterionPlan(GoalEventType.FORM_SUBMITTED, (rng.choice(FORMS),))
        conversions = []
        if first or rng.random() < 0.5:
            paid = CriterionPlan(GoalEventType.ORDER_PLACED, (PAID_PLAN,))
            conversions.append(
                ConversionPlan("paid-plan", "Started paid plan", paid, 30_000_000, False)
            )
            if first or rng.random() < 0.5:
                demo = CriterionPlan(GoalEventType.FORM_SUBMITTED, (DEMO_FORM,))
                conversions.append(ConversionPlan("demo", "Requested demo", demo, None, False))
            if first or rng.random() < 0.3:
                conversions.append(ConversionPlan("meeting", "Booked meeting", None, None, True))
        window = rng.random()
        plans.append(
            JourneyPlan(
                journey_id=f"j{index:03d}",
                weight=(index + 1) ** -0.8,
                versions=versions,
                version_starts=tuple(starts),
                goal=goal,
                window_days=None if window < 0.7 else 7 if window < 0.9 else 14,
                exclude_machine_opens=rng.random() < 0.3,
                holdout_share=0.1 if first or rng.random() < 0.3 else 0.0,
                conversions=tuple(conversions),
            )
        )
    return plans


def _message_key(message: MessagePlan) -> str:
    return message.message_id


def define_requests(
    plans: Sequence[JourneyPlan],
) -> tuple[list[pb.DefineJourneyRequest], list[pb.DefineConversionRequest]]:
    journeys, conversions = [], []
    for plan in plans:
        journey = journey_pb2.Journey(
            journey_id=plan.journey_id,
            display_name=f"Journey {plan.journey_id}",
            purpose=journey_pb2.JOURNEY_PURPOSE_CONVERSION,
            goal=plan.goal.message(),
            exclude_machine_opens=plan.exclude_machine_opens,
            versions=[
                journey_pb2.JourneyVersion(
                    version=number,
                    messages=[
                        journey_pb2.JourneyMessage(
                            message_id=m.message_id,
                            channel=journey_pb2.Channel.ValueType(int(m.channel)),
                            step_id=m.step_id,
                            path=m.path,
                        )
                        for m in messages
                    ],
                )
                for number, messages in enumerate(plan.versions, 1)
            ],
        )
        if plan.window_days is not None:
            journey.attribution_window.FromTimedelta(timedelta(days=plan.window_days))
        journeys.append(
            pb.DefineJourneyRequest(request_id=f"bench-{plan.journey_id}", journey=journey)
        )
        for c in plan.conversions:
            definition = conversions_pb2.ConversionDefinition(
                conversion_id=c.conversion_id,
                journey_id=plan.journey_id,
                name=c.name,
                award_on_goal=c.award_on_goal,
            )
            if c.trigger is not None:
                definition.trigger.CopyFrom(c.trigger.message())
            if c.value_eur_micros is not None:
                definition.value.currency_code = "EUR"
                definition.value.amount_micros = c.value_eur_micros
            conversions.append(
                pb.DefineConversionRequest(
                    request_id=f"bench-{plan.journey_id}-{c.conversion_id}", conversion=definition
                )
            )
    return journeys, conversions


async def define_catalog(target: str, tenant_id: str, plans: Sequence[JourneyPlan]) -> None:
    """Defines the journeys and conversions through the server at `target`."""
    journeys, conversions = define_requests(plans)
    metadata = (("x-tenant-id", tenant_id),)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
        for journey in journeys:
            await stub.DefineJourney(journey, metadata=metadata, timeout=60)
        for conversion in conversions:
            await stub.DefineConversion(conversion, metadata=metadata, timeout=60)


@dataclass(slots=True)
class Enrollments:
    """Enrollment columns; times are epoch seconds, journeys index the plans."""

    ids: list[str]
    contacts: list[str]
    journeys: list[int]
    versions: list[int]
    enter: list[float]
    exit: list[float | None]
    reasons: list[int]
    holdout: list[bool]


def make_enrollments(spec: TenantSpec, plans: Sequence[JourneyPlan], now: float) -> Enrollments:
    rng = random.Random(f"{spec.seed}:enrollments")
    r = rng.random
    n = spec.enrollments
    begin, span = now - spec.days * DAY, spec.days * DAY - 60.0
    journeys = rng.choices(
        range(len(plans)), cum_weights=list(accumulate(p.weight for p in plans)), k=n
    )
    enter = [begin + span * r() for _ in range(n)]
    # About 2.5 enrollments per contact, in different journeys (or the same one again).
    contact_count = max(1, n * 2 // 5)
    names = [f"c{i:07d}" for i in range(contact_count)]
    contacts = [names[int(r() * contact_count)] for _ in range(n)]
    versions = [
        bisect.bisect_right(plans[j].version_starts, t)
        for j, t in zip(journeys, enter, strict=True)
    ]
    exits: list[float | None] = []
    reasons: list[int] = []
    reason_values = [int(ExitReason.COMPLETED), int(ExitReason.EXIT_RULE), int(ExitReason.REMOVED)]
    expovariate, choices = rng.expovariate, rng.choices
    for t in enter:
        end = t + expovariate(1 / (10 * DAY)) if r() < EXITED_SHARE else now
        if end < now - 1:
            exits.append(end)
            reasons.append(choices(reason_values, (75, 20, 5))[0])
        else:
            exits.append(None)
            reasons.append(0)
    holdout = [r() < plans[j].holdout_share for j in journeys]
    ids = [f"e{i:07d}" for i in range(n)]
    return Enrollments(ids, contacts, journeys, versions, enter, exits, reasons, holdout)


@dataclass(slots=True)
class GoalEvents:
    ids: list[str] = field(default_factory=list)
    contacts: list[str] = field(default_factory=list)
    types: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    forms: list[str] = field(default_factory=list)
    products: list[list[str]] = field(default_factory=list)
    currencies: list[str | None] = field(default_factory=list)
    micros: list[int | None] = field(default_factory=list)


def make_goal_events(
    spec: TenantSpec, plans: Sequence[JourneyPlan], enr: Enrollments, now: float
) -> GoalEvents:
    """Mostly by enrolled contacts, during their enrollment and matching its journey's goal
    (a goal shared by several journeys, such as any order, matches them all); some repeats by
    the same contact later; the rest by anyone, of any kind."""
    rng = random.Random(f"{spec.seed}:goal-events")
    r = rng.random
    out = GoalEvents()
    n = len(enr.ids)
    treated = [k for k in range(n) if not enr.holdout[k]] or list(range(n))
    begin = now - spec.days * DAY
    order, form = int(GoalEventType.ORDER_PLACED), int(GoalEventType.FORM_SUBMITTED)
    visit = int(GoalEventType.WEBSITE_PAGE_VISITED)
    last: tuple[str, int, float, str, list[str]] | None = None
    for _ in range(spec.goal_events):
        u = r()
        url, form_id = "", ""
        products: list[str] = []
        if last is not None and u < 0.1:  # the same contact again, later: a repeat
            contact, kind, t, form_id, products = last
            t = min(t + rng.expovariate(1 / (5 * DAY)), now - 1)
        elif u < 0.85:
            k = int(r() * n)
            if enr.holdout[k] and r() < 0.35:  # treatment works: fewer holdout goals
                k = treated[int(r() * len(treated))]
            plan = plans[enr.journeys[k]]
            start, stop = enr.enter[k], enr.exit[k] or now
            t = start + (stop - start) * r() if r() < 0.9 else min(stop + 7 * DAY * r(), now - 1)
            contact, kind = enr.contacts[k], int(plan.goal.event_type)
            if kind == form:
                v = r()
                form_id = (
                    plan.goal.values[0]
                    if v < 0.85
                    else DEMO_FORM
                    if v < 0.95
                    else rng.choice(FORMS)
                )
            else:
                goal_products = plan.goal.values
                products = [rng.choice(goal_products if goal_products and r() < 0.85 else PRODUCTS)]
                if r() < 0.15:
                    products.append(PAID_PLAN)
            last = (contact, kind, t, form_id, products)
        else:
            k = int(r() * n)
            contact = enr.contacts[k] if r() < 0.7 else f"u{k:07d}"
            t = begin + (spec.days * DAY - 1) * r()
            v = r()
            kind = order if v < 0.5 else form if v < 0.8 else visit
            if kind == order:
                products = [rng.choice(PRODUCTS)]
            elif kind == form:
                form_id = rng.choice(FORMS)
            else:
                url = f"https://shop.example/p/{int(r() * 500)}"
        currency: str | None = None
        micros: int | None = None
        if kind == order and r() < 0.9:
            currency = "EUR" if r() < 0.7 else "USD"
            micros = rng.randint(500, 40_000) * 10_000
        out.contacts.append(contact)
        out.types.append(kind)
        out.times.append(t)
        out.urls.append(url)
        out.forms.append(form_id)
        out.products.append(products)
        out.currencies.append(currency)
        out.micros.append(micros)
    out.ids = [f"g{i:07d}" for i in range(spec.goal_events)]
    return out


@dataclass(slots=True)
class Touchpoints:
    contacts: list[str] = field(default_factory=list)
    journeys: list[str] = field(default_factory=list)
    versions: list[int] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    machine: list[bool] = field(default_factory=list)

    def truncate(self, size: int) -> None:
        for column in (
            self.contacts,
            self.journeys,
            self.versions,
            self.messages,
            self.channels,
            self.actions,
            self.times,
            self.machine,
        ):
            del column[size:]


def touchpoint_chunks(
    spec: TenantSpec, plans: Sequence[JourneyPlan], enr: Enrollments, now: float, chunk: int
) -> Iterator[Touchpoints]:
    """`spec.touchpoints` touchpoints in chunks. Each send picks a treated enrollment, a message
    of its version and a time while it is enrolled (a few just before entry or after exit),
    then follows its channel's chain: delivered, maybe opened (some by a machine), clicked."""
    rng = random.Random(f"{spec.seed}:touchpoints")
    r, expovariate = rng.random, rng.expovariate
    treated = [k for k in range(len(enr.ids)) if not enr.holdout[k]]
    if not treated:
        return
    nt = len(treated)
    # Per journey and version (index 0 unused): (message id, channel, chain) of its messages.
    sends: list[list[list[tuple[str, int, tuple[tuple[Action, float, float], ...]]]]] = [
        [[]]
        + [
            [(m.message_id, int(m.channel), _CHAINS[m.channel]) for m in msgs]
            for msgs in plan.versions
        ]
        for plan in plans
    ]
    journey_ids = [p.journey_id for p in plans]
    email, opened = int(Channel.EMAIL), int(Action.OPENED)
    e_contacts, e_journeys, e_versions = enr.contacts, enr.journeys, enr.versions
    e_enter, e_exit = enr.enter, enr.exit
    produced = 0
    while produced < spec.touchpoints:
        target = min(chunk, spec.touchpoints - produced)
        out = Touchpoints()
        contacts, journeys, versions = out.contacts, out.journeys, out.versions
        messages, channels, actions = out.messages, out.channels, out.actions
        times, machine = out.times, out.machine
        while len(times) < target:
            k = treated[int(r() * nt)]
            j, version = e_journeys[k], e_versions[k]
            options = sends[j][version]
            message_id, channel, chain = options[int(r() * len(options))]
            start = e_enter[k]
            stop = e_exit[k] or now
            u = r()
            if u < OUTSIDE_SHARE / 2:
                t = start - 2 * DAY * r()
            elif u < OUTSIDE_SHARE and stop < now:
                t = min(stop + 5 * DAY * r(), now - 1)
            else:
                t = start + (stop - start) * r()
            contact, journey_id = e_contacts[k], journey_ids[j]
            tagged = 0 if r() < UNVERSIONED_SHARE else version
            for action, chance, delay in chain:
                if chance < 1.0 and r() >= chance:
                    break
                robot = action == opened and channel == email and r() < MACHINE_OPEN_SHARE
                if robot:
                    t += 1 + 120 * r()
                elif delay:
                    t += expovariate(1 / delay)
                if t >= now:
                    break
                contacts.append(contact)
                journeys.append(journey_id)
                versions.append(tagged)
                messages.append(message_id)
                channels.append(channel)
                actions.append(int(action))
                times.append(t)
                machine.append(robot)
        out.truncate(target)
        produced += target
        yield out


def _timestamps(seconds: Iterable[float]) -> list[datetime]:
    fromtimestamp = datetime.fromtimestamp
    return [fromtimestamp(s, UTC) for s in seconds]


def _optional_timestamps(seconds: Iterable[float | None]) -> list[datetime | None]:
    fromtimestamp = datetime.fromtimestamp
    return [None if s is None else fromtimestamp(s, UTC) for s in seconds]


class Progress:
    """One progress line per phase: rewritten in place on a terminal, else every tenth."""

    def __init__(self, what: str, started: float | None = None) -> None:
        self.what = what
        self.started = time.perf_counter() if started is None else started
        self.last = self.started
        self.tty = sys.stdout.isatty()
        self.shown = 0

    def __call__(self, done: int, total: int) -> None:
        self.last = time.perf_counter()
        if not self.tty and done < total and done - self.shown < total / 10:
            return
        self.shown = done
        elapsed = self.last - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        line = f"  {self.what}: {done:,}/{total:,} ({rate:,.0f}/s)"
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n", flush=True)

    def done(self) -> None:
        if self.tty:
            print(flush=True)


async def drop_secondary_indexes(conn: asyncpg.Connection, tables: Sequence[str]) -> list[str]:
    """Drops the secondary indexes of those tables that are empty; returns their definitions.
    Building an index once after a load is much faster than growing it row by row."""
    saved: list[str] = []
    for table in tables:
        if await conn.fetchval(f"select exists (select 1 from {table})"):
            continue
        for row in await conn.fetch(
            "select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as ddl"
            " from pg_index i where i.indrelid = $1::regclass and not i.indisprimary"
            " and not i.indisunique",
            table,
        ):
            await conn.execute(f"drop index {row['name']}")
            saved.append(row["ddl"])
    return saved


async def create_indexes(conn: asyncpg.Connection, definitions: Sequence[str]) -> None:
    await conn.execute("set maintenance_work_mem = '1GB'")
    for ddl in definitions:
        # A partitioned table's index reads "ON ONLY": built so, it would cover no partition.
        await conn.execute(ddl.replace(" ON ONLY ", " ON "))
    await conn.execute("reset maintenance_work_mem")


@dataclass
class Loaded:
    """What was loaded, how long each phase took (seconds), and the largest journey."""

    spec: TenantSpec
    largest_journey: str
    counts: dict[str, int]
    phases: dict[str, float]

    @property
    def load_seconds(self) -> float:
        """Everything but the rebuild: definitions, COPY, indexes, statistics."""
        return sum(s for phase, s in self.phases.items() if phase != "rebuild")

    @property
    def rebuild_seconds(self) -> float:
        return self.phases["rebuild"]


class Phases:
    """Times the phases of a load and prints each as it ends."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, name: str) -> Iterator[list[str]]:
        """Times the block; what it appends to the yielded list is printed with the time."""
        notes: list[str] = []
        started = time.perf_counter()
        yield notes
        self.seconds[name] = time.perf_counter() - started
        if not self.quiet:
            what = f"{' '.join(notes)} in " if notes else ""
            print(f"{name}: {what}{self.seconds[name]:.1f} s", flush=True)


async def load_tenant(
    url: str, spec: TenantSpec, target: str | None = None, *, quiet: bool = False
) -> Loaded:
    """Generates the tenant into the database at `url` (migrated, the tenant absent), defining
    its journeys through the server at `target` (serving that database; None: a `serve` process
    started for them), then rebuilds it."""
    phases = Phases(quiet)
    now = time.time()
    plans = plan_journeys(spec, now)
    with phases.timed("definitions") as notes:
        if target is None:
            async with serve("--database-url", url) as server:
                await define_catalog(server.target, spec.tenant_id, plans)
        else:
            await define_catalog(target, spec.tenant_id, plans)
        notes.append(f"{len(plans)} journeys")
    conn = await asyncpg.connect(url)
    try:
        dropped = await drop_secondary_indexes(conn, RAW_TABLES)
        try:
            with phases.timed("enrollments") as notes:
                enr = make_enrollments(spec, plans, now)
                await _copy_enrollments(conn, spec.tenant_id, plans, enr)
                notes.append(f"{len(enr.ids):,}")
            with phases.timed("goal events") as notes:
                goals = make_goal_events(spec, plans, enr, now)
                await _copy_goal_events(conn, spec.tenant_id, goals)
                notes.append(f"{len(goals.ids):,}")
            with phases.timed("touchpoints") as notes:
                done = await _copy_touchpoints(conn, spec, plans, enr, now, quiet)
                notes.append(f"{done:,}")
            del enr, goals
        finally:
            with phases.timed("indexes"):
                await create_indexes(conn, dropped)
        with phases.timed("analyze"):
            for table in RAW_TABLES:
                await conn.execute(f"analyze {table}")
        with phases.timed("rebuild") as notes:
            rebuilt = await _rebuild(conn, url, spec.tenant_id, quiet)
            notes.append(
                f"{rebuilt.enrollments:,} enrollments, {rebuilt.contacts:,} contacts,"
                f" {rebuilt.award_changes:,} award changes"
            )
        # As autovacuum would have by the time anyone reads a report: fresh statistics and
        # visibility maps after the rebuild's updates of every enrollment.
        with phases.timed("vacuum analyze"):
            await conn.execute("vacuum (analyze)")
        counts = await tenant_counts(conn, spec.tenant_id)
        largest = await largest_journey(conn, spec.tenant_id)
    finally:
        await conn.close()
    return Loaded(spec, largest, counts, phases.seconds)


async def _copy(
    conn: asyncpg.Connection,
    table: str,
    columns: Sequence[str],
    tenant_id: str,
    *values: Sequence[object],
) -> None:
    await conn.copy_records_to_table(
        table, records=zip(repeat(tenant_id), *values), columns=list(columns)
    )


async def _copy_enrollments(
    conn: asyncpg.Connection, tenant_id: str, plans: Sequence[JourneyPlan], enr: Enrollments
) -> None:
    journey_ids = [plans[j].journey_id for j in enr.journeys]
    await _copy(
        conn,
        "enrollments",
        ENROLLMENT_COLUMNS,
        tenant_id,
        enr.ids,
        enr.contacts,
        journey_ids,
        enr.versions,
        _timestamps(enr.enter),
        _optional_timestamps(enr.exit),
        enr.reasons,
        enr.holdout,
    )


async def _copy_goal_events(conn: asyncpg.Connection, tenant_id: str, goals: GoalEvents) -> None:
    await partitions.ensure(conn, _timestamps(goals.times))  # the months, as the server would
    await _copy(
        conn,
        "goal_events",
        GOAL_EVENT_COLUMNS,
        tenant_id,
        goals.ids,
        goals.contacts,
        goals.types,
        _timestamps(goals.times),
        goals.urls,
        goals.forms,
        goals.products,
        goals.currencies,
        goals.micros,
    )


async def _copy_touchpoints(
    conn: asyncpg.Connection,
    spec: TenantSpec,
    plans: Sequence[JourneyPlan],
    enr: Enrollments,
    now: float,
    quiet: bool,
) -> int:
    progress = None if quiet else Progress("touchpoints")
    done = 0
    for chunk in touchpoint_chunks(spec, plans, enr, now, CHUNK):
        await partitions.ensure(conn, _timestamps(chunk.times))
        ids = [f"t{i:09d}" for i in range(done, done + len(chunk.times))]
        await _copy(
            conn,
            "touchpoints",
            TOUCHPOINT_COLUMNS,
            spec.tenant_id,
            ids,
            chunk.contacts,
            chunk.journeys,
            chunk.versions,
            chunk.messages,
            chunk.channels,
            chunk.actions,
            _timestamps(chunk.times),
            chunk.machine,
        )
        done += len(ids)
        if progress is not None:
            progress(done, spec.touchpoints)
    if progress is not None:
        progress.done()
    return done


async def _rebuild(conn: asyncpg.Connection, url: str, tenant_id: str, quiet: bool) -> Rebuilt:
    # The derived tables start empty and, where autovacuum is off, stay without statistics:
    # the rebuild's prepared statements would keep the generic plans made for empty tables
    # (a scan of the whole tenant per batch) as the tables grow. Analyzing them whenever the
    # batches done double plans those statements again.
    derived = [
        r["table_name"]
        for r in await conn.fetch(
            "select distinct table_name from information_schema.columns"
            " where table_schema = current_schema() and column_name = 'tenant_id'"
        )
        if r["table_name"] not in RAW_TABLES
    ]
    batches: dict[str, int] = defaultdict(int)
    current: list[Progress] = []
    started = time.perf_counter()

    async def on_progress(what: str, done: int, total: int) -> None:
        batches[what] += 1
        if batches[what] & (batches[what] - 1) == 0:  # 1, 2, 4, 8...
            await conn.execute(f"analyze {', '.join(derived)}")
        if quiet:
            return
        if not current or current[-1].what != f"rebuild {what}":
            if current:
                current[-1].done()
            # A phase starts where the previous one ended.
            current.append(Progress(f"rebuild {what}", current[-1].last if current else started))
        current[-1](done, total)

    pool = await db.create_pool(url, 1, 2)
    try:
        rebuilt = await rebuild_tenant(pool, tenant_id, on_progress)
    finally:
        await pool.close()
    if current:
        current[-1].done()
    return rebuilt


async def tenant_counts(conn: asyncpg.Connection, tenant_id: str) -> dict[str, int]:
    """Rows of the tenant in every table that has tenants, and its goal conversions."""
    counts = {}
    for table in await conn.fetch(
        "select table_name from information_schema.columns where table_schema = current_schema()"
        " and column_name = 'tenant_id' order by table_name"
    ):
        name = table["table_name"]
        counts[name] = await conn.fetchval(
            f'select count(*) from "{name}" where tenant_id = $1', tenant_id
        )
    counts["goal conversions"] = await conn.fetchval(
        "select count(*) from awards where tenant_id = $1 and conversion_id = ''", tenant_id
    )
    return counts


async def largest_journey(conn: asyncpg.Connection, tenant_id: str) -> str:
    """The journey with the most enrollments (the smallest id among equals)."""
    found = await conn.fetchval(
        "select journey_id from enrollments where tenant_id = $1"
        " group by journey_id order by count(*) desc, journey_id limit 1",
        tenant_id,
    )
    assert isinstance(found, str), f"tenant {tenant_id!r} has no enrollments"
    return found


def add_size_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TenantSpec()
    parser.add_argument("--tenant", default=defaults.tenant_id)
    parser.add_argument("--journeys", type=int, default=defaults.journeys)
    parser.add_argument("--enrollments", type=int, default=defaults.enrollments)
    parser.add_argument("--goal-events", type=int, default=defaults.goal_events)
    parser.add_argument("--days", type=int, default=defaults.days)
    parser.add_argument("--seed", type=int, default=defaults.seed)


def spec_from_arguments(args: argparse.Namespace, touchpoints: int) -> TenantSpec:
    """The tenant that add_size_arguments' options describe, with this many touchpoints."""
    return TenantSpec(
        args.tenant,
        args.journeys,
        args.enrollments,
        touchpoints,
        args.goal_events,
        args.days,
        args.seed,
    )


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", required=True, help="the database to load into")
    parser.add_argument("--touchpoints", type=int, default=TenantSpec().touchpoints)
    parser.add_argument("--target", help="a server on that database (default: start one)")
    add_size_arguments(parser)
    args = parser.parse_args()
    spec = spec_from_arguments(args, args.touchpoints)
    await db.migrate(args.database_url)
    loaded = await load_tenant(args.database_url, spec, args.target)
    print(f"load {loaded.load_seconds:.1f} s, rebuild {loaded.rebuild_seconds:.1f} s")
    for table, count in loaded.counts.items():
        print(f"  {table}: {count:,}")
    print(f"largest journey: {loaded.largest_journey}")


if __name__ == "__main__":
    asyncio.run(main())
