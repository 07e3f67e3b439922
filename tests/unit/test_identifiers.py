"""Identifiers are checked by a fast path for the common case and a regex for the rest: any text
gets the verdict of the rule, spelled out here on its own."""

from __future__ import annotations

import unicodedata

from hypothesis import example, given
from hypothesis import strategies as st

from journey_conversions import parse


def _is_acceptable(value: str) -> bool:
    """The rule: 1 to 200 characters, no control character, no whitespace at either end."""
    control = any(ord(c) < 0x20 or ord(c) == 0x7F for c in value)
    return 0 < len(value) <= parse.MAX_ID_LENGTH and not control and value == value.strip()


_ALPHABET = st.sampled_from(
    [
        *("a", "Z", "0", "-", "é", "\U0001f600"),  # printable
        *(" ", "\t", "\n", "\x85", "\u00a0", "\u2028", "\u3000"),  # whitespace
        *("\x00", "\x1f", "\x7f"),  # control
        *("\u200b", "\ufeff", unicodedata.lookup("OGHAM SPACE MARK")),  # oddities
    ]
)


# Either end matters on its own: a body with any characters, then one more at each end or not.
_EDGE = st.sampled_from(["", "a", " ", "\u00a0", "\x1f"])
_COMPOSED = st.builds(lambda a, body, z: a + body + z, _EDGE, st.text(_ALPHABET, max_size=6), _EDGE)


@given(_COMPOSED | st.text(max_size=210))
@example("a ")
@example(" a")
@example("a" * parse.MAX_ID_LENGTH)
@example("a" * (parse.MAX_ID_LENGTH + 1))
@example("")
def test_an_identifier_is_accepted_exactly_when_the_rule_says(value: str) -> None:
    checker = parse.Checker("item")
    assert checker.identifier("id", value) == value
    assert (checker.violations == []) == _is_acceptable(value)
    assert all(v.field == "item.id" for v in checker.violations)
