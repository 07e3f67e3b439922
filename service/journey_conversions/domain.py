"""Domain values: what the service reasons about, free of protobuf and SQL.

Enum numbers equal the protobuf enum numbers, so conversion at the edge is a cast.
Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from journey_conversions.credit import Shares

DEFAULT_ATTRIBUTION_WINDOW = timedelta(days=30)
GOAL_CONVERSION = ""  # the conversion key of an enrollment's goal conversion


class Channel(enum.IntEnum):
    EMAIL = 1
    SMS = 2
    MOBILE_PUSH = 3
    WEB_PUSH = 4
    SOCIAL_POST = 5
    SOCIAL_AD = 6
    WHATSAPP = 7


class Action(enum.IntEnum):
    DELIVERED = 1
    OPENED = 2
    CLICKED = 3
    READ = 4
    REPLIED = 5


ACTIONS_BY_CHANNEL: dict[Channel, frozenset[Action]] = {
    Channel.EMAIL: frozenset({Action.DELIVERED, Action.OPENED, Action.CLICKED}),
    Channel.SMS: frozenset({Action.DELIVERED, Action.CLICKED}),
    Channel.MOBILE_PUSH: frozenset({Action.DELIVERED, Action.OPENED, Action.CLICKED}),
    Channel.WEB_PUSH: frozenset({Action.DELIVERED, Action.CLICKED}),
    Channel.SOCIAL_POST: frozenset({Action.CLICKED}),
    Channel.SOCIAL_AD: frozenset({Action.CLICKED}),
    Channel.WHATSAPP: frozenset({Action.DELIVERED, Action.READ, Action.CLICKED, Action.REPLIED}),
}


class GoalEventType(enum.IntEnum):
    CONTACT_UPDATED = 1
    CONTACT_ADDED_TO_LIST = 2
    EMAIL_OPENED = 3
    EMAIL_CLICKED = 4
    SMS_CLICKED = 5
    SMS_OPTED_IN = 6
    WEB_PUSH_CLICKED = 7
    WEB_PUSH_SUBSCRIBED = 8
    WEBSITE_PAGE_VISITED = 9
    FORM_SUBMITTED = 10
    ORDER_PLACED = 11
    ORDER_UPDATED = 12
    SOCIAL_POST_CLICKED = 13
    MOBILE_PUSH_OPENED = 14
    MOBILE_PUSH_CLICKED = 15
    SOCIAL_AD_CLICKED = 16
    WHATSAPP_READ = 17
    WHATSAPP_CLICKED = 18
    WHATSAPP_REPLIED = 19


# Message goal events name a message of the journey; this is the channel that message must have.
MESSAGE_EVENT_CHANNEL: dict[GoalEventType, Channel] = {
    GoalEventType.EMAIL_OPENED: Channel.EMAIL,
    GoalEventType.EMAIL_CLICKED: Channel.EMAIL,
    GoalEventType.SMS_CLICKED: Channel.SMS,
    GoalEventType.SMS_OPTED_IN: Channel.SMS,
    GoalEventType.WEB_PUSH_CLICKED: Channel.WEB_PUSH,
    GoalEventType.WEB_PUSH_SUBSCRIBED: Channel.WEB_PUSH,
    GoalEventType.SOCIAL_POST_CLICKED: Channel.SOCIAL_POST,
    GoalEventType.MOBILE_PUSH_OPENED: Channel.MOBILE_PUSH,
    GoalEventType.MOBILE_PUSH_CLICKED: Channel.MOBILE_PUSH,
    GoalEventType.SOCIAL_AD_CLICKED: Channel.SOCIAL_AD,
    GoalEventType.WHATSAPP_READ: Channel.WHATSAPP,
    GoalEventType.WHATSAPP_CLICKED: Channel.WHATSAPP,
    GoalEventType.WHATSAPP_REPLIED: Channel.WHATSAPP,
}


class Purpose(enum.IntEnum):
    UNSPECIFIED = 0
    ACQUISITION = 1
    NURTURE = 2
    CONVERSION = 3


class ExitReason(enum.IntEnum):
    UNSPECIFIED = 0
    COMPLETED = 1
    GOAL_REACHED = 2
    EXIT_RULE = 3
    REMOVED = 4


class OutcomeStatus(enum.IntEnum):
    CONVERTED = 1
    REPEAT = 2
    NOT_CONVERTED = 3


class Verdict(enum.IntEnum):
    WON = 1
    GOAL_MISMATCH = 2
    NOT_ACTIVE = 3
    NO_TOUCHPOINT_IN_WINDOW = 4
    BEATEN = 5


class AwardSource(enum.IntEnum):
    ATTRIBUTION = 1
    TRIGGER = 2
    CONVERT_STEP = 3
    EVALUATE_GOAL_STEP = 4


class ConversionEventType(enum.IntEnum):
    AWARDED = 1
    UPDATED = 2
    RETRACTED = 3


@dataclass(frozen=True, slots=True)
class Money:
    currency_code: str
    amount_micros: int


@dataclass(frozen=True, slots=True)
class Criterion:
    """What a goal event must be to meet a goal or a conversion trigger."""

    event_type: GoalEventType
    attribute_name: str = ""
    attribute_value: str | None = None  # None: any change of the attribute
    list_ids: frozenset[str] = frozenset()
    message_ids: frozenset[str] = frozenset()
    url_patterns: tuple[str, ...] = ()
    form_ids: frozenset[str] = frozenset()
    product_ids: frozenset[str] = frozenset()  # empty: any product


@dataclass(frozen=True, slots=True)
class CriterionChange:
    """A criterion in force from `effective_time` on (None: from the start of time)."""

    effective_time: datetime | None
    criterion: Criterion | None  # None: removed


@dataclass(frozen=True, slots=True)
class JourneyMessage:
    message_id: str
    channel: Channel
    step_id: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class JourneyVersion:
    version: int
    messages: tuple[JourneyMessage, ...]


@dataclass(frozen=True, slots=True)
class ConversionRule:
    """A named conversion as attribution sees it."""

    conversion_id: str
    trigger_history: tuple[CriterionChange, ...] = ()
    value: Money | None = None


@dataclass(frozen=True, slots=True)
class JourneyRules:
    """Everything about a journey that attribution needs."""

    journey_id: str
    goal_history: tuple[CriterionChange, ...] = ()
    window: timedelta = DEFAULT_ATTRIBUTION_WINDOW
    exclude_machine_opens: bool = False
    conversions: tuple[ConversionRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Enrollment:
    enrollment_id: str
    contact_id: str
    journey_id: str
    version: int
    enter_time: datetime
    exit_time: datetime | None = None
    exit_reason: ExitReason = ExitReason.UNSPECIFIED
    holdout: bool = False  # a control-group enrollment: never credited

    def active_at(self, when: datetime) -> bool:
        """Entered at or before `when` and not ended before it (an exit at `when` is active)."""
        return self.enter_time <= when and (self.exit_time is None or self.exit_time >= when)


@dataclass(frozen=True, slots=True)
class EnrollmentExit:
    """The end of an enrollment, as ExitJourney and BatchExitJourney carry it."""

    enrollment_id: str
    exit_time: datetime
    exit_reason: ExitReason


@dataclass(frozen=True, slots=True)
class Touchpoint:
    event_id: str
    contact_id: str
    journey_id: str
    version: int
    message_id: str
    channel: Channel
    action: Action
    occur_time: datetime
    machine_generated: bool = False


@dataclass(frozen=True, slots=True)
class GoalEvent:
    event_id: str
    contact_id: str
    event_type: GoalEventType
    occur_time: datetime
    attribute_name: str = ""
    attribute_value: str = ""
    list_id: str = ""
    message_id: str = ""
    url: str = ""
    form_id: str = ""
    product_ids: frozenset[str] = frozenset()
    value: Money | None = None
    amends_event_id: str = ""  # ORDER_UPDATED: the goal event whose value this replaces


@dataclass(frozen=True, slots=True)
class StepMark:
    """A Convert or Evaluate-goal step that awarded a named conversion to an enrollment."""

    event_id: str
    enrollment_id: str
    conversion_id: str
    step_id: str
    mark_time: datetime
    source: AwardSource  # CONVERT_STEP or EVALUATE_GOAL_STEP


@dataclass(frozen=True, slots=True)
class ContactHistory:
    """One contact's events from `since` on, and the state that earlier (final) events left.

    `since` is None for the whole history. Goal events are those at or after `since`;
    enrollments and touchpoints include whatever can still affect them.
    """

    contact_id: str
    journeys: dict[str, JourneyRules]
    enrollments: tuple[Enrollment, ...]
    touchpoints: tuple[Touchpoint, ...]
    goal_events: tuple[GoalEvent, ...]
    marks: tuple[StepMark, ...] = ()
    since: datetime | None = None
    converted_before: frozenset[str] = frozenset()  # enrollments whose goal already converted
    awarded_before: frozenset[tuple[str, str]] = frozenset()  # (enrollment, conversion) keys


@dataclass(frozen=True, slots=True)
class Candidate:
    journey_id: str
    verdict: Verdict
    touchpoint: Touchpoint | None = None
    enrollment_id: str = ""
    beaten_by_journey_id: str = ""


@dataclass(frozen=True, slots=True)
class Outcome:
    """Where one goal event's goal conversion went, and why."""

    goal_event_id: str
    status: OutcomeStatus
    journey_id: str = ""
    enrollment_id: str = ""
    touchpoint: Touchpoint | None = None
    candidates: tuple[Candidate, ...] = ()


@dataclass(frozen=True, slots=True)
class Award:
    """A conversion awarded to an enrollment; `conversion_id` is GOAL_CONVERSION for the goal."""

    contact_id: str
    journey_id: str
    enrollment_id: str
    version: int
    conversion_id: str
    source: AwardSource
    award_time: datetime
    goal_event_id: str = ""
    touchpoint_event_id: str = ""
    message_id: str = ""
    step_id: str = ""
    value: Money | None = None
    touchpoint_time: datetime | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.enrollment_id, self.conversion_id)


@dataclass(frozen=True, slots=True)
class Decision:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    awards: dict[tuple[str, str], Award] = field(default_factory=dict)
    # enrollment id -> its first goal event matching the journey's goal while enrolled
    goal_met: dict[str, datetime] = field(default_factory=dict)
    # enrollment id -> its goal conversion's credit split per message (credit.split)
    credits: dict[str, dict[str, Shares]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Journey:
    journey_id: str
    display_name: str = ""
    purpose: Purpose = Purpose.UNSPECIFIED
    window: timedelta = DEFAULT_ATTRIBUTION_WINDOW
    exclude_machine_opens: bool = False
    versions: tuple[JourneyVersion, ...] = ()
    goal_history: tuple[CriterionChange, ...] = ()
    create_time: datetime | None = None
    update_time: datetime | None = None

    @property
    def goal(self) -> Criterion | None:
        return self.goal_history[-1].criterion if self.goal_history else None

    def messages(self) -> dict[str, Channel]:
        return {m.message_id: m.channel for v in self.versions for m in v.messages}


@dataclass(frozen=True, slots=True)
class ConversionDefinition:
    conversion_id: str
    journey_id: str
    name: str
    value: Money | None = None
    trigger: Criterion | None = None
    award_on_goal: bool = False
    revision: int = 1
    create_time: datetime | None = None
    update_time: datetime | None = None
