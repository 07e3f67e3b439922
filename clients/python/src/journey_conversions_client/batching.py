"""Splitting long lists into batches of at most 1000 items, and merging the per-item results."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TypeVar

from journeys.conversions.v1 import events_pb2

MAX_BATCH_SIZE = 1000
"""The most items the service accepts in one batch call."""
DEFAULT_BATCH_SIZE = 500
"""The batch size the client uses unless told otherwise."""

T = TypeVar("T")

# A field path that starts at an item of the batch: "touchpoints[3].occur_time".
_ITEM_PATH = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\[(\d+)\]")


def split_batches(items: Sequence[T], batch_size: int = DEFAULT_BATCH_SIZE) -> list[Sequence[T]]:
    """Cuts ``items`` into consecutive slices of ``batch_size`` (the last may be shorter)."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}, not {batch_size}")
    return [items[start : start + batch_size] for start in range(0, len(items), batch_size)]


def merge_item_results(
    batches: Iterable[tuple[int, Sequence[events_pb2.ItemResult]]],
) -> list[events_pb2.ItemResult]:
    """Joins each batch's results, given with the batch's offset in the whole list, into one
    list whose ``index`` fields count from the start of the whole list. The field paths of a
    rejected item's violations ("touchpoints[3].occur_time") and its message are renumbered
    the same way."""
    merged: list[events_pb2.ItemResult] = []
    for offset, results in batches:
        for result in results:
            item = events_pb2.ItemResult()
            item.CopyFrom(result)
            item.index = offset + result.index
            if offset and item.HasField("error"):
                _renumber_paths(item.error, result.index, item.index)
            merged.append(item)
    return merged


def _renumber_paths(error: events_pb2.ItemError, local: int, whole: int) -> None:
    renamed: dict[str, str] = {}
    for violation in error.field_violations:
        match = _ITEM_PATH.match(violation.field)
        if match is None or int(match[2]) != local:
            continue
        old, new = match[0], f"{match[1]}[{whole}]"
        violation.field = new + violation.field[match.end() :]
        renamed[old] = new
    for old, new in renamed.items():
        error.message = error.message.replace(old, new)
