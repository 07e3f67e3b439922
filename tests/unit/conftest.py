"""Load the Hypothesis profiles (HYPOTHESIS_PROFILE=thorough for many more examples)."""

from tests import hypothesis_profiles

__all__ = ["hypothesis_profiles"]
