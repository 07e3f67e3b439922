"""Hypothesis strategies for random contact histories, shared by the property tests.

Times come from a coarse grid (whole days, a few hours of the day) and from a handful of
"anchor" times that many events reuse, and touchpoints are often placed exactly at, just
inside or just outside a window edge of some anchor, so that equal times and boundaries happen
in most examples. Ids are short and their order is unrelated to time, so tie-breaks by id are
exercised too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from journey_conversions.domain import (
    ACTIONS_BY_CHANNEL,
    DEFAULT_ATTRIBUTION_WINDOW,
    MESSAGE_EVENT_CHANNEL,
    Action,
    Award,
    AwardSource,
    Channel,
    ContactHistory,
    ConversionRule,
    Criterion,
    CriterionChange,
    Decision,
    Enrollment,
    GoalEvent,
    GoalEventType,
    JourneyMessage,
    JourneyRules,
    Money,
    StepMark,
    Touchpoint,
)
from tests.reference_model import ModelAward, ModelOutcome, ModelResult, criterion_at, run_model

BASE = datetime(2024, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
WINDOWS = (HOUR, DAY, 7 * DAY, DEFAULT_ATTRIBUTION_WINDOW)
NEAR_EDGE = (-HOUR, timedelta(0), timedelta(0), HOUR)
OFFSETS = (-7 * DAY, -2 * DAY, -DAY, -HOUR, HOUR, DAY)
ENTRY_LEADS = (timedelta(0), timedelta(0), HOUR, DAY, 7 * DAY)

ATTRIBUTES = ("plan", "tier")
ATTRIBUTE_VALUES = ("pro", "free")
LISTS = ("L1", "L2", "L3")
FORMS = ("F1", "F2")
PRODUCTS = ("P1", "P2", "P3")
URL_PATTERNS = ("https://x.io/a", "https://x.io/a*", "https://x.io/*", "https://x.io/b")
URLS = ("https://x.io/a", "https://x.io/ab", "https://x.io/b", "https://x.io/", "https://y.io/a")
STEPS = ("s1", "s2")

_CHANNEL_SHORT = {
    Channel.EMAIL: "email",
    Channel.SMS: "sms",
    Channel.MOBILE_PUSH: "mpush",
    Channel.WEB_PUSH: "wpush",
    Channel.SOCIAL_POST: "post",
    Channel.SOCIAL_AD: "ad",
    Channel.WHATSAPP: "wa",
}


def journey_messages(journey_id: str) -> tuple[JourneyMessage, ...]:
    """One message per channel, and a second email, all named after the journey."""
    messages = [
        JourneyMessage(f"{journey_id}-{short}", channel, step_id=f"step-{short}")
        for channel, short in _CHANNEL_SHORT.items()
    ]
    messages.append(JourneyMessage(f"{journey_id}-email2", Channel.EMAIL, step_id="step-email2"))
    return tuple(messages)


@dataclass(frozen=True)
class World:
    """A tenant's journeys and the events of one or more contacts."""

    journeys: dict[str, JourneyRules]
    enrollments: tuple[Enrollment, ...]
    touchpoints: tuple[Touchpoint, ...]
    goal_events: tuple[GoalEvent, ...]
    marks: tuple[StepMark, ...] = ()
    messages: dict[str, tuple[JourneyMessage, ...]] = field(default_factory=dict)

    @property
    def contacts(self) -> list[str]:
        return sorted(
            {e.contact_id for e in self.enrollments}
            | {t.contact_id for t in self.touchpoints}
            | {g.contact_id for g in self.goal_events}
        )

    def history(
        self,
        contact_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        converted_before: frozenset[str] = frozenset(),
        awarded_before: frozenset[tuple[str, str]] = frozenset(),
    ) -> ContactHistory:
        """The contact's history, with goal events and marks in [since, until)."""

        def kept(when: datetime) -> bool:
            return (since is None or when >= since) and (until is None or when < until)

        enrollments = tuple(e for e in self.enrollments if e.contact_id == contact_id)
        own = {e.enrollment_id for e in enrollments}
        return ContactHistory(
            contact_id=contact_id,
            journeys=dict(self.journeys),
            enrollments=enrollments,
            touchpoints=tuple(t for t in self.touchpoints if t.contact_id == contact_id),
            goal_events=tuple(
                g for g in self.goal_events if g.contact_id == contact_id and kept(g.occur_time)
            ),
            marks=tuple(m for m in self.marks if m.enrollment_id in own and kept(m.mark_time)),
            since=since,
            converted_before=converted_before,
            awarded_before=awarded_before,
        )

    def model(
        self,
        *,
        converted_before: frozenset[str] = frozenset(),
        awarded_before: frozenset[tuple[str, str]] = frozenset(),
    ) -> ModelResult:
        return run_model(
            self.journeys.values(),
            self.enrollments,
            self.touchpoints,
            self.goal_events,
            marks=self.marks,
            converted_before=converted_before,
            awarded_before=awarded_before,
        )


def as_model(decision: Decision) -> ModelResult:
    """A Decision in the model's terms (raises if an award's details are inconsistent)."""
    outcomes = {
        event_id: ModelOutcome(
            o.status,
            o.journey_id,
            o.enrollment_id,
            o.touchpoint.event_id if o.touchpoint else "",
        )
        for event_id, o in decision.outcomes.items()
    }
    awards = {key: model_award(a) for key, a in decision.awards.items()}
    return ModelResult(outcomes, awards)


def model_award(award: Award) -> ModelAward:
    return ModelAward(
        award.source,
        award.goal_event_id,
        award.touchpoint_event_id,
        award.award_time,
        award.step_id,
        award.value,
    )


def award_is_consistent(award: Award, world: World) -> bool:
    """An award names its key, and the enrollment's contact, journey and version."""
    enrollment = next(e for e in world.enrollments if e.enrollment_id == award.enrollment_id)
    touchpoint = next(
        (t for t in world.touchpoints if t.event_id == award.touchpoint_event_id), None
    )
    return (
        award.contact_id == enrollment.contact_id
        and award.journey_id == enrollment.journey_id
        and award.version == enrollment.version
        and award.message_id == (touchpoint.message_id if touchpoint else "")
    )


def _unique_ids(draw: st.DrawFn, prefix: str, count: int) -> list[str]:
    numbers = draw(st.lists(st.integers(0, 99), min_size=count, max_size=count, unique=True))
    return [f"{prefix}{n}" for n in numbers]


@st.composite
def worlds(
    draw: st.DrawFn,
    *,
    base: datetime = BASE,
    days: int = 60,
    contacts: int = 2,
    max_journeys: int = 3,
    max_enrollments: int = 3,
    max_touchpoints: int = 8,
    max_goal_events: int = 6,
    max_marks: int = 2,
    windows: Sequence[timedelta] = WINDOWS,
    first_change_untimed: bool = False,
    max_trigger_changes: int = 2,
    mark_sources: Sequence[AwardSource] = (
        AwardSource.CONVERT_STEP,
        AwardSource.EVALUATE_GOAL_STEP,
    ),
    marks_within_enrollments: bool = False,
    lowest: datetime | None = None,
) -> World:
    """A random world of 1 to `contacts` contacts, with times in [base, base + days].

    For the server: `first_change_untimed` (a journey's first goal and a conversion's first
    trigger are in force from the start), `max_trigger_changes=1` (trigger changes take effect
    when made, that is after every event), `marks_within_enrollments`, and `lowest` bounds
    event times from below (defaults to `base`).
    """
    floor = base if lowest is None else lowest
    ceiling = base + days * DAY + 23 * HOUR

    def at(day: int, hour: int) -> datetime:
        return base + day * DAY + hour * HOUR

    grid = st.builds(at, st.integers(0, days), st.sampled_from((0, 0, 1, 12, 23)))
    anchors = draw(st.lists(grid, min_size=1, max_size=3))

    # Hypothesis favours the first element of sampled_from (and False, and small numbers), so
    # odds are set with the likely value first.
    def often() -> bool:
        return draw(st.sampled_from((True, True, True, False)))

    def rarely() -> bool:
        return draw(st.sampled_from((False, False, False, False, True)))

    def bounded(when: datetime) -> datetime:
        return when if floor <= when <= ceiling else draw(grid)

    def within(enrollment: Enrollment, when: datetime) -> datetime:
        return min(max(when, enrollment.enter_time), enrollment.exit_time or ceiling)

    def time() -> datetime:
        """Mostly an anchor, or near one, sometimes anywhere on the grid."""
        mode = draw(st.sampled_from(("anchor", "anchor", "near", "near", "grid")))
        if mode == "grid":
            return draw(grid)
        anchor = draw(st.sampled_from(anchors))
        if mode == "anchor":
            return anchor
        return bounded(anchor + draw(st.sampled_from(OFFSETS)))

    n_journeys = draw(st.sampled_from([n for n in (1, 2, 2, 3, 3) if n <= max_journeys]))
    journey_ids = sorted(draw(st.permutations(("ja", "jb", "jc")))[:n_journeys])
    messages = {j: journey_messages(j) for j in journey_ids}
    kinds = draw(st.lists(st.sampled_from(list(GoalEventType)), min_size=1, max_size=2))
    # A rivalry: every journey has the same goal (not a message goal, since those name the
    # journey's own messages) and every contact is in all of them from the start.
    rivalry = n_journeys > 1 and draw(st.booleans())
    if rivalry:
        kinds = [k for k in kinds if k not in MESSAGE_EVENT_CHANNEL] or [GoalEventType.ORDER_PLACED]

    shared: list[Criterion] = []

    def criterion(journey_id: str) -> Criterion:
        """Often the same criterion as another journey's (not for message goals, whose
        messages are the journey's own)."""
        if draw(st.booleans()) and shared:
            return draw(st.sampled_from(shared))
        made = fresh_criterion(journey_id)
        if made.event_type not in MESSAGE_EVENT_CHANNEL:
            shared.append(made)
        return made

    def fresh_criterion(journey_id: str) -> Criterion:
        kind = draw(st.sampled_from(kinds))
        if kind == GoalEventType.CONTACT_UPDATED:
            return Criterion(
                kind,
                attribute_name=draw(st.sampled_from(ATTRIBUTES)),
                attribute_value=draw(st.none() | st.sampled_from(ATTRIBUTE_VALUES)),
            )
        if kind == GoalEventType.CONTACT_ADDED_TO_LIST:
            return Criterion(
                kind, list_ids=frozenset(draw(st.sets(st.sampled_from(LISTS), min_size=1)))
            )
        if kind in MESSAGE_EVENT_CHANNEL:
            own = [
                m.message_id
                for m in messages[journey_id]
                if m.channel == MESSAGE_EVENT_CHANNEL[kind]
            ]
            return Criterion(
                kind, message_ids=frozenset(draw(st.sets(st.sampled_from(own), min_size=1)))
            )
        if kind == GoalEventType.WEBSITE_PAGE_VISITED:
            patterns = draw(
                st.lists(st.sampled_from(URL_PATTERNS), min_size=1, max_size=2, unique=True)
            )
            return Criterion(kind, url_patterns=tuple(patterns))
        if kind == GoalEventType.FORM_SUBMITTED:
            return Criterion(
                kind, form_ids=frozenset(draw(st.sets(st.sampled_from(FORMS), min_size=1)))
            )
        return Criterion(kind, product_ids=frozenset(draw(st.sets(st.sampled_from(PRODUCTS)))))

    def history(journey_id: str, max_size: int) -> tuple[CriterionChange, ...]:
        """0 to `max_size` changes; the first usually in force from the start of time."""
        count = draw(st.sampled_from([1, *range(2, max_size + 1), 1, 0]))
        changes = []
        for index in range(count):
            first = index == 0
            effective = None if first and often() else time()
            if first_change_untimed:
                effective = None if first else effective
            removed = not first and rarely()
            changes.append(CriterionChange(effective, None if removed else criterion(journey_id)))
        # Ordered by effective time, the untimed first definition before the rest.
        return tuple(
            sorted(changes, key=lambda c: (c.effective_time is not None, c.effective_time or base))
        )

    def money() -> Money | None:
        return draw(
            st.none() | st.builds(lambda n: Money("EUR", n * 1_000_000), st.integers(1, 50))
        )

    def shareable(changes: tuple[CriterionChange, ...]) -> bool:
        return all(
            c.criterion is None or c.criterion.event_type not in MESSAGE_EVENT_CHANNEL
            for c in changes
        )

    def goal_event(
        event_id: str,
        contact_id: str,
        when: datetime,
        target: Criterion | None,
        all_messages: list[JourneyMessage],
    ) -> GoalEvent:
        """A goal event meeting `target` (if it can), or a random one of the kinds in play."""
        kind = target.event_type if target else draw(st.sampled_from(kinds))

        def pick(wanted: Iterable[str], pool: Sequence[str]) -> str:
            return draw(st.sampled_from(sorted(wanted) or pool))

        fields: dict[str, str] = {}
        products: frozenset[str] = frozenset()
        if kind == GoalEventType.CONTACT_UPDATED:
            fields["attribute_name"] = pick([target.attribute_name] if target else [], ATTRIBUTES)
            wanted = [target.attribute_value] if target and target.attribute_value else []
            fields["attribute_value"] = pick(wanted, ATTRIBUTE_VALUES)
        elif kind == GoalEventType.CONTACT_ADDED_TO_LIST:
            fields["list_id"] = pick(target.list_ids if target else [], LISTS)
        elif kind in MESSAGE_EVENT_CHANNEL:
            channel = MESSAGE_EVENT_CHANNEL[kind]
            fitting = [m.message_id for m in all_messages if m.channel == channel]
            fields["message_id"] = pick(target.message_ids if target else [], fitting)
        elif kind == GoalEventType.WEBSITE_PAGE_VISITED:
            urls = [
                p.rstrip("*") + draw(st.sampled_from(("", "x"))) if p.endswith("*") else p
                for p in (target.url_patterns if target else [])
            ]
            fields["url"] = pick(urls, URLS)
        elif kind == GoalEventType.FORM_SUBMITTED:
            fields["form_id"] = pick(target.form_ids if target else [], FORMS)
        else:
            products = frozenset(draw(st.sets(st.sampled_from(PRODUCTS), min_size=1)))
            if target and target.product_ids:
                products |= {pick(target.product_ids, PRODUCTS)}
        return GoalEvent(
            event_id,
            contact_id,
            kind,
            when,
            attribute_name=fields.get("attribute_name", ""),
            attribute_value=fields.get("attribute_value", ""),
            list_id=fields.get("list_id", ""),
            message_id=fields.get("message_id", ""),
            url=fields.get("url", ""),
            form_id=fields.get("form_id", ""),
            product_ids=products,
            value=money(),
        )

    journeys: dict[str, JourneyRules] = {}
    same_goal = rivalry or draw(st.booleans())  # "multiple journeys with the same goal"
    for journey_id in journey_ids:
        conversions = tuple(
            ConversionRule(f"{journey_id}-k{i}", history(journey_id, max_trigger_changes), money())
            for i in range(draw(st.integers(0, 2)))
        )
        goal_history = history(journey_id, 3)
        if same_goal and journeys and shareable(journeys[journey_ids[0]].goal_history):
            goal_history = journeys[journey_ids[0]].goal_history
        journeys[journey_id] = JourneyRules(
            journey_id,
            goal_history=goal_history,
            window=draw(st.sampled_from(windows)),
            exclude_machine_opens=draw(st.booleans()),
            conversions=conversions,
        )

    contact_ids = [f"c{i}" for i in range(1, draw(st.integers(1, contacts)) + 1)]
    counts = {
        c: (
            draw(st.integers(n_journeys if rivalry else 1, max(n_journeys, max_enrollments))),
            draw(st.integers(0, max_touchpoints)),
            draw(st.integers(min(1, max_goal_events), max_goal_events)),
        )
        for c in contact_ids
    }
    enrollment_ids = iter(_unique_ids(draw, "e", sum(n for n, _, _ in counts.values())))
    touchpoint_ids = iter(_unique_ids(draw, "t", sum(n for _, n, _ in counts.values())))
    goal_ids = iter(_unique_ids(draw, "g", sum(n for _, _, n in counts.values())))

    enrollments: list[Enrollment] = []
    touchpoints: list[Touchpoint] = []
    goal_events: list[GoalEvent] = []
    marks: list[StepMark] = []
    for contact_id in contact_ids:
        n_enrollments, n_touchpoints, n_goals = counts[contact_id]
        # Often one enrollment per journey first, then re-entries.
        order = draw(st.permutations(journey_ids))
        for index in range(n_enrollments):
            journey_id = order[index % len(order)]
            rival = rivalry and index < len(order)
            if not rival and draw(st.booleans()):
                journey_id = draw(st.sampled_from(journey_ids))
            enter = bounded(time() - draw(st.sampled_from(ENTRY_LEADS)))
            if rival or draw(st.sampled_from(("near", "start"))) == "start":  # in all along
                enter = floor
            exit_time: datetime | None = None
            if draw(st.booleans()):
                # Goal events aimed at an enrollment come at enter + a lead: exits too, often.
                exit_time = draw(
                    st.sampled_from((enter + draw(st.sampled_from(ENTRY_LEADS)), time()))
                )
                exit_time = max(enter, bounded(exit_time))
            enrollments.append(
                Enrollment(
                    next(enrollment_ids),
                    contact_id,
                    journey_id,
                    draw(st.sampled_from((1, 1, 2))),
                    enter,
                    exit_time,
                    holdout=draw(st.sampled_from((False, False, False, True))),
                )
            )
        own_enrollments = [e for e in enrollments if e.contact_id == contact_id]
        own_journeys = sorted({e.journey_id for e in own_enrollments})
        all_messages = [m for j in journey_ids for m in messages[j]]
        goal_times: list[datetime] = []
        for _ in range(n_goals):
            # Most events happen during an enrollment and are aimed at that journey's goal or
            # one of its triggers, so that they often match; the rest are anything.
            target: Criterion | None = None
            when = time()
            if often():
                enrollment = draw(st.sampled_from(own_enrollments))
                when = bounded(enrollment.enter_time + draw(st.sampled_from(ENTRY_LEADS)))
                rules = journeys[enrollment.journey_id]
                target = criterion_at(rules.goal_history, when)
                triggers = [
                    c
                    for k in rules.conversions
                    if (c := criterion_at(k.trigger_history, when)) is not None
                ]
                if triggers and (target is None or rarely()):
                    target = draw(st.sampled_from(triggers))
            goal_times.append(when)
            goal_events.append(goal_event(next(goal_ids), contact_id, when, target, all_messages))
        own_goals = [g for g in goal_events if g.contact_id == contact_id]
        for n in range(draw(st.sampled_from((0, 0, 1, 2))) if own_goals else 0):
            # An order update or refund amending an earlier event's value, usually after it,
            # sometimes before (then it does not apply); two may amend the same event.
            amended = draw(st.sampled_from(own_goals))
            lead = draw(st.sampled_from(ENTRY_LEADS))
            when = bounded(amended.occur_time + draw(st.sampled_from((lead, lead, -lead))))
            goal_events.append(
                GoalEvent(
                    f"{amended.event_id}-amend{n}",
                    contact_id,
                    GoalEventType.ORDER_UPDATED,
                    when,
                    product_ids=frozenset(draw(st.sets(st.sampled_from(PRODUCTS), min_size=1))),
                    value=money(),
                    amends_event_id=amended.event_id,
                )
            )
        for _ in range(n_touchpoints):
            # Mostly touchpoints of journeys the contact is in, shortly before a goal event or
            # at, just inside or just outside a window edge.
            journey_id = draw(st.sampled_from(draw(st.sampled_from((own_journeys, journey_ids)))))
            message = draw(st.sampled_from(messages[journey_id]))
            # Opens first (Hypothesis favours it), so that machine opens are common.
            actions = sorted(ACTIONS_BY_CHANNEL[message.channel], key=lambda a: a != Action.OPENED)
            action = draw(st.sampled_from(actions))
            mode = draw(st.sampled_from(("before", "before", "edge", "edge", "same", "any")))
            when = time()
            reference = draw(st.sampled_from(goal_times or anchors))
            touch_times = [t.occur_time for t in touchpoints if t.contact_id == contact_id]
            if mode == "same" and touch_times:  # ties between touchpoints, across journeys too
                when = draw(st.sampled_from(touch_times))
            elif mode == "before":
                when = bounded(reference - draw(st.sampled_from(ENTRY_LEADS)))
            elif mode == "edge":
                edge = reference - journeys[journey_id].window
                when = bounded(edge + draw(st.sampled_from(NEAR_EDGE)))
            touchpoints.append(
                Touchpoint(
                    next(touchpoint_ids),
                    contact_id,
                    journey_id,
                    1,
                    message.message_id,
                    message.channel,
                    action,
                    when,
                    machine_generated=action == Action.OPENED
                    and draw(st.sampled_from((True, False))),
                )
            )
        own = [
            e
            for e in enrollments
            if e.contact_id == contact_id and journeys[e.journey_id].conversions
        ]

        def mark_time(goal_times: list[datetime] = goal_times) -> datetime:
            """Often the time of a goal event, to tie with trigger awards."""
            if draw(st.booleans()) and goal_times:
                return draw(st.sampled_from(goal_times))
            return time()

        for n in range(draw(st.integers(0, max_marks if own else 0))):
            enrollment = draw(st.sampled_from(own))
            conversion = draw(st.sampled_from(journeys[enrollment.journey_id].conversions))
            marks.append(
                StepMark(
                    f"mark-{contact_id}-{n}",
                    enrollment.enrollment_id,
                    conversion.conversion_id,
                    draw(st.sampled_from(STEPS)),
                    within(enrollment, mark_time()) if marks_within_enrollments else mark_time(),
                    draw(st.sampled_from(mark_sources)),
                )
            )
    return World(
        journeys, tuple(enrollments), tuple(touchpoints), tuple(goal_events), tuple(marks), messages
    )
