"""Hypothesis profiles for the property tests: CI-sized by default, `thorough` on demand.

Select with the environment: HYPOTHESIS_PROFILE=thorough pytest tests/unit tests/api
Tests that need their own size call `examples(ci, thorough)` in their @settings.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(PROFILE)


def examples(ci: int, thorough: int) -> int:
    """The example count for a test: `ci` by default, `thorough` under the thorough profile."""
    return thorough if PROFILE == "thorough" else ci
