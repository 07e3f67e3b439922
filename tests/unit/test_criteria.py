"""Which goal events meet a goal (one test per row of DOMAIN.md's goal table), and which goal
is in force when."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from journey_conversions.criteria import in_force, matches
from journey_conversions.domain import (
    MESSAGE_EVENT_CHANNEL,
    Criterion,
    CriterionChange,
    GoalEvent,
    GoalEventType,
)

T = datetime(2024, 5, 10, tzinfo=UTC)


def event(kind: GoalEventType, **fields: str) -> GoalEvent:
    return GoalEvent(
        "g1",
        "c1",
        kind,
        T,
        attribute_name=fields.get("attribute_name", ""),
        attribute_value=fields.get("attribute_value", ""),
        list_id=fields.get("list_id", ""),
        message_id=fields.get("message_id", ""),
        url=fields.get("url", ""),
        form_id=fields.get("form_id", ""),
    )


def order(kind: GoalEventType, *products: str) -> GoalEvent:
    return GoalEvent("g1", "c1", kind, T, product_ids=frozenset(products))


def message_goal(kind: GoalEventType, *message_ids: str) -> Criterion:
    return Criterion(kind, message_ids=frozenset(message_ids))


class TestContactUpdated:
    """A contact-updated goal names an attribute and the value it must take, or any change."""

    PLAN_PRO = Criterion(
        GoalEventType.CONTACT_UPDATED, attribute_name="plan", attribute_value="pro"
    )
    ANY_PLAN = Criterion(GoalEventType.CONTACT_UPDATED, attribute_name="plan")

    def test_attribute_taking_the_goal_value_matches(self) -> None:
        updated = event(GoalEventType.CONTACT_UPDATED, attribute_name="plan", attribute_value="pro")
        assert matches(self.PLAN_PRO, updated)

    def test_attribute_taking_another_value_does_not_match(self) -> None:
        updated = event(
            GoalEventType.CONTACT_UPDATED, attribute_name="plan", attribute_value="free"
        )
        assert not matches(self.PLAN_PRO, updated)

    def test_other_attribute_with_the_goal_value_does_not_match(self) -> None:
        updated = event(GoalEventType.CONTACT_UPDATED, attribute_name="tier", attribute_value="pro")
        assert not matches(self.PLAN_PRO, updated)

    def test_goal_without_value_matches_any_change_of_the_attribute(self) -> None:
        for value in ("pro", "free", ""):
            updated = event(
                GoalEventType.CONTACT_UPDATED, attribute_name="plan", attribute_value=value
            )
            assert matches(self.ANY_PLAN, updated)

    def test_goal_without_value_still_requires_the_attribute(self) -> None:
        updated = event(GoalEventType.CONTACT_UPDATED, attribute_name="tier", attribute_value="x")
        assert not matches(self.ANY_PLAN, updated)

    def test_empty_goal_value_means_the_attribute_must_become_empty(self) -> None:
        cleared = Criterion(
            GoalEventType.CONTACT_UPDATED, attribute_name="plan", attribute_value=""
        )
        emptied = event(GoalEventType.CONTACT_UPDATED, attribute_name="plan", attribute_value="")
        set_to_pro = event(
            GoalEventType.CONTACT_UPDATED, attribute_name="plan", attribute_value="pro"
        )
        assert matches(cleared, emptied)
        assert not matches(cleared, set_to_pro)


class TestAddedToList:
    """A contact-added-to-list goal matches an addition to any of its lists."""

    GOAL = Criterion(GoalEventType.CONTACT_ADDED_TO_LIST, list_ids=frozenset({"L1", "L2"}))

    def test_addition_to_any_goal_list_matches(self) -> None:
        assert matches(self.GOAL, event(GoalEventType.CONTACT_ADDED_TO_LIST, list_id="L1"))
        assert matches(self.GOAL, event(GoalEventType.CONTACT_ADDED_TO_LIST, list_id="L2"))

    def test_addition_to_another_list_does_not_match(self) -> None:
        assert not matches(self.GOAL, event(GoalEventType.CONTACT_ADDED_TO_LIST, list_id="L3"))


class TestMessageGoals:
    """A message goal (email, SMS, web push, social post, mobile push, social ad, WhatsApp)
    matches an event of its type on any of the messages it names."""

    @pytest.mark.parametrize("kind", [GoalEventType.EMAIL_OPENED, GoalEventType.EMAIL_CLICKED])
    def test_email_opened_or_clicked_on_a_goal_message_matches(self, kind: GoalEventType) -> None:
        goal = message_goal(kind, "welcome", "reminder")
        assert matches(goal, event(kind, message_id="reminder"))
        assert not matches(goal, event(kind, message_id="newsletter"))

    @pytest.mark.parametrize("kind", [GoalEventType.SMS_CLICKED, GoalEventType.SMS_OPTED_IN])
    def test_sms_clicked_or_opted_in_on_a_goal_message_matches(self, kind: GoalEventType) -> None:
        goal = message_goal(kind, "sms-1")
        assert matches(goal, event(kind, message_id="sms-1"))
        assert not matches(goal, event(kind, message_id="sms-2"))

    @pytest.mark.parametrize(
        "kind", [GoalEventType.WEB_PUSH_CLICKED, GoalEventType.WEB_PUSH_SUBSCRIBED]
    )
    def test_web_push_clicked_or_subscribed_on_a_goal_message_matches(
        self, kind: GoalEventType
    ) -> None:
        goal = message_goal(kind, "wp-1")
        assert matches(goal, event(kind, message_id="wp-1"))
        assert not matches(goal, event(kind, message_id="wp-2"))

    def test_social_post_clicked_on_a_goal_post_matches(self) -> None:
        kind = GoalEventType.SOCIAL_POST_CLICKED
        goal = message_goal(kind, "post-1")
        assert matches(goal, event(kind, message_id="post-1"))
        assert not matches(goal, event(kind, message_id="post-2"))

    @pytest.mark.parametrize(
        "kind", [GoalEventType.MOBILE_PUSH_OPENED, GoalEventType.MOBILE_PUSH_CLICKED]
    )
    def test_mobile_push_opened_or_clicked_on_a_goal_message_matches(
        self, kind: GoalEventType
    ) -> None:
        goal = message_goal(kind, "push-1")
        assert matches(goal, event(kind, message_id="push-1"))
        assert not matches(goal, event(kind, message_id="push-2"))

    def test_social_ad_clicked_on_a_goal_ad_matches(self) -> None:
        kind = GoalEventType.SOCIAL_AD_CLICKED
        goal = message_goal(kind, "ad-1")
        assert matches(goal, event(kind, message_id="ad-1"))
        assert not matches(goal, event(kind, message_id="ad-2"))

    @pytest.mark.parametrize(
        "kind",
        [
            GoalEventType.WHATSAPP_READ,
            GoalEventType.WHATSAPP_CLICKED,
            GoalEventType.WHATSAPP_REPLIED,
        ],
    )
    def test_whatsapp_read_clicked_or_replied_on_a_goal_message_matches(
        self, kind: GoalEventType
    ) -> None:
        goal = message_goal(kind, "wa-1")
        assert matches(goal, event(kind, message_id="wa-1"))
        assert not matches(goal, event(kind, message_id="wa-2"))

    def test_every_message_goal_type_is_covered_above(self) -> None:
        covered = {
            GoalEventType.EMAIL_OPENED,
            GoalEventType.EMAIL_CLICKED,
            GoalEventType.SMS_CLICKED,
            GoalEventType.SMS_OPTED_IN,
            GoalEventType.WEB_PUSH_CLICKED,
            GoalEventType.WEB_PUSH_SUBSCRIBED,
            GoalEventType.SOCIAL_POST_CLICKED,
            GoalEventType.MOBILE_PUSH_OPENED,
            GoalEventType.MOBILE_PUSH_CLICKED,
            GoalEventType.SOCIAL_AD_CLICKED,
            GoalEventType.WHATSAPP_READ,
            GoalEventType.WHATSAPP_CLICKED,
            GoalEventType.WHATSAPP_REPLIED,
        }
        assert covered == set(MESSAGE_EVENT_CHANNEL)

    def test_same_message_with_another_action_does_not_match(self) -> None:
        goal = message_goal(GoalEventType.EMAIL_CLICKED, "welcome")
        assert not matches(goal, event(GoalEventType.EMAIL_OPENED, message_id="welcome"))


class TestPageVisited:
    """A page-visited goal matches an exact URL, or a prefix when its pattern ends in '*'."""

    def test_exact_url_matches(self) -> None:
        goal = Criterion(GoalEventType.WEBSITE_PAGE_VISITED, url_patterns=("https://x.io/pricing",))
        assert matches(goal, event(GoalEventType.WEBSITE_PAGE_VISITED, url="https://x.io/pricing"))

    def test_exact_pattern_does_not_match_a_longer_url(self) -> None:
        goal = Criterion(GoalEventType.WEBSITE_PAGE_VISITED, url_patterns=("https://x.io/pricing",))
        visit = event(GoalEventType.WEBSITE_PAGE_VISITED, url="https://x.io/pricing/team")
        assert not matches(goal, visit)

    def test_star_pattern_matches_any_url_with_that_prefix(self) -> None:
        goal = Criterion(GoalEventType.WEBSITE_PAGE_VISITED, url_patterns=("https://x.io/docs/*",))
        for url in ("https://x.io/docs/", "https://x.io/docs/a", "https://x.io/docs/a/b?c=d"):
            assert matches(goal, event(GoalEventType.WEBSITE_PAGE_VISITED, url=url))
        assert not matches(goal, event(GoalEventType.WEBSITE_PAGE_VISITED, url="https://x.io/doc"))

    def test_any_of_several_patterns_matches(self) -> None:
        goal = Criterion(
            GoalEventType.WEBSITE_PAGE_VISITED, url_patterns=("https://x.io/a", "https://x.io/b*")
        )
        assert matches(goal, event(GoalEventType.WEBSITE_PAGE_VISITED, url="https://x.io/bb"))
        assert not matches(goal, event(GoalEventType.WEBSITE_PAGE_VISITED, url="https://x.io/c"))


class TestFormSubmitted:
    """A form-submitted goal matches a submission of any of its forms."""

    GOAL = Criterion(GoalEventType.FORM_SUBMITTED, form_ids=frozenset({"demo", "trial"}))

    def test_submission_of_a_goal_form_matches(self) -> None:
        assert matches(self.GOAL, event(GoalEventType.FORM_SUBMITTED, form_id="trial"))

    def test_submission_of_another_form_does_not_match(self) -> None:
        assert not matches(self.GOAL, event(GoalEventType.FORM_SUBMITTED, form_id="newsletter"))


class TestOrders:
    """An order goal matches an order with any of its products; with no products, any order."""

    @pytest.mark.parametrize("kind", [GoalEventType.ORDER_PLACED, GoalEventType.ORDER_UPDATED])
    def test_order_with_any_goal_product_matches(self, kind: GoalEventType) -> None:
        goal = Criterion(kind, product_ids=frozenset({"P1", "P2"}))
        assert matches(goal, order(kind, "P9", "P2"))

    @pytest.mark.parametrize("kind", [GoalEventType.ORDER_PLACED, GoalEventType.ORDER_UPDATED])
    def test_order_without_goal_products_does_not_match(self, kind: GoalEventType) -> None:
        goal = Criterion(kind, product_ids=frozenset({"P1", "P2"}))
        assert not matches(goal, order(kind, "P3"))
        assert not matches(goal, order(kind))

    @pytest.mark.parametrize("kind", [GoalEventType.ORDER_PLACED, GoalEventType.ORDER_UPDATED])
    def test_goal_without_products_matches_any_order(self, kind: GoalEventType) -> None:
        goal = Criterion(kind)
        assert matches(goal, order(kind, "P3"))
        assert matches(goal, order(kind))

    def test_order_updated_does_not_meet_an_order_placed_goal(self) -> None:
        goal = Criterion(GoalEventType.ORDER_PLACED)
        assert not matches(goal, order(GoalEventType.ORDER_UPDATED, "P1"))


class TestGoalInForce:
    """A goal event is judged by the goal in force at its occur time (not retroactive)."""

    OLD = Criterion(GoalEventType.FORM_SUBMITTED, form_ids=frozenset({"demo"}))
    NEW = Criterion(GoalEventType.ORDER_PLACED)
    CHANGED_AT = datetime(2024, 5, 10, tzinfo=UTC)

    def test_no_history_means_no_goal(self) -> None:
        assert in_force((), T) is None

    def test_first_definition_is_in_force_from_the_start_of_time(self) -> None:
        history = (CriterionChange(None, self.OLD),)
        assert in_force(history, datetime(1990, 1, 1, tzinfo=UTC)) == self.OLD

    def test_goal_set_later_is_not_in_force_before(self) -> None:
        history = (CriterionChange(self.CHANGED_AT, self.NEW),)
        assert in_force(history, datetime(2024, 5, 9, 23, tzinfo=UTC)) is None

    def test_change_is_in_force_from_its_effective_time_inclusive(self) -> None:
        history = (CriterionChange(None, self.OLD), CriterionChange(self.CHANGED_AT, self.NEW))
        assert in_force(history, datetime(2024, 5, 9, 23, 59, tzinfo=UTC)) == self.OLD
        assert in_force(history, self.CHANGED_AT) == self.NEW
        assert in_force(history, datetime(2024, 6, 1, tzinfo=UTC)) == self.NEW

    def test_removed_goal_means_no_goal_from_then_on(self) -> None:
        history = (CriterionChange(None, self.OLD), CriterionChange(self.CHANGED_AT, None))
        assert in_force(history, datetime(2024, 5, 9, tzinfo=UTC)) == self.OLD
        assert in_force(history, self.CHANGED_AT) is None

    def test_latest_of_several_changes_applies(self) -> None:
        third = Criterion(GoalEventType.CONTACT_ADDED_TO_LIST, list_ids=frozenset({"L1"}))
        later = datetime(2024, 5, 20, tzinfo=UTC)
        history = (
            CriterionChange(None, self.OLD),
            CriterionChange(self.CHANGED_AT, self.NEW),
            CriterionChange(later, third),
        )
        assert in_force(history, datetime(2024, 5, 15, tzinfo=UTC)) == self.NEW
        assert in_force(history, later) == third
