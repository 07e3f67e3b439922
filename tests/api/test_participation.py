"""Participation: enter, exit and re-enter, and who was an active participant at a time."""

from __future__ import annotations

from typing import TYPE_CHECKING

from journeys.conversions.v1 import service_pb2 as pb

from tests.builders import ago, define_journey, enter, exit_, message

if TYPE_CHECKING:
    from tests.builders import Stub


class TestActiveParticipant:
    """ListEnrollments with active_time answers "was the contact in the journey at T"."""

    async def test_re_entry_and_the_exit_instant_itself(self, stub: Stub) -> None:
        await stub.DefineJourney(define_journey("j", [message("m")]))
        await stub.EnterJourney(enter("first", "c1", "j", ago(days=10)))
        await stub.ExitJourney(exit_("first", ago(days=8)))
        await stub.EnterJourney(enter("second", "c1", "j", ago(days=5)))

        async def active(**delta: float) -> list[str]:
            reply = await stub.ListEnrollments(
                pb.ListEnrollmentsRequest(contact_id="c1", journey_id="j", active_time=ago(**delta))
            )
            return [e.enrollment_id for e in reply.enrollments]

        assert await active(days=11) == []  # before the first entry
        assert await active(days=9) == ["first"]
        assert await active(days=8) == ["first"]  # an exit at T is still active at T
        assert await active(days=7) == []  # between the stays
        assert await active(days=1) == ["second"]

        everything = await stub.ListEnrollments(
            pb.ListEnrollmentsRequest(contact_id="c1", page_size=1)
        )
        assert [e.enrollment_id for e in everything.enrollments] == ["first"]
        rest = await stub.ListEnrollments(
            pb.ListEnrollmentsRequest(contact_id="c1", page_token=everything.next_page_token)
        )
        assert [e.enrollment_id for e in rest.enrollments] == ["second"]
        assert rest.next_page_token == ""
