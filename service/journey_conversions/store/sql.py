"""SQL statements longer than a few lines, kept as .sql files beside the store (store/sql/)."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def statement(name: str) -> str:
    """The text of store/sql/`name`.sql."""
    return resources.files("journey_conversions.store").joinpath("sql", f"{name}.sql").read_text()
