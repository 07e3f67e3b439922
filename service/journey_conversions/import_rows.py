"""Rows of an import file (NDJSON or CSV), each read into the protobuf message a client would
send for one item (events_pb2.Enrollment, Touchpoint or GoalEvent), or the reason it cannot be.

NDJSON: one JSON object per line, as google.protobuf.json_format reads it (enum names or
numbers, RFC 3339 times). CSV: a header row naming the fields; a repeated field holds its
values separated by '|', a nested one is a dotted column (value.currency_code); an empty cell
is an unset field.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, cast

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from journeys.conversions.v1 import events_pb2


@dataclass(frozen=True, slots=True)
class Row:
    line: int  # the row's 1-based line in the file (a CSV row's last line)
    raw: Any  # what the file held: the JSON value, the CSV row as a dict, or the bad text
    message: Message | None  # None: the row could not be read into the message
    error: str = ""


_MESSAGES: dict[str, type[Message]] = {
    "enrollments": events_pb2.Enrollment,
    "touchpoints": events_pb2.Touchpoint,
    "goal_events": events_pb2.GoalEvent,
}


def _to_message(kind: str, value: Any) -> tuple[Message | None, str]:
    if not isinstance(value, dict):
        return None, "not a JSON object"
    message = _MESSAGES[kind]()
    try:
        json_format.ParseDict(value, message)
    except json_format.ParseError as error:
        return None, str(error)
    return message, ""


def _ndjson_rows(kind: str, stream: TextIO) -> Iterator[Row]:
    for number, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except ValueError as error:
            yield Row(number, text.rstrip("\r\n"), None, f"invalid JSON: {error}")
            continue
        message, error_text = _to_message(kind, value)
        yield Row(number, value, message, error_text)


def _csv_value(descriptor: Descriptor, names: list[str], cell: str) -> tuple[str, Any] | None:
    """The JSON field of a dotted column name and its cell (None: no such field)."""
    found = descriptor.fields_by_name.get(names[0])
    if found is None:
        return None
    if len(names) > 1:
        if found.message_type is None:
            return None
        nested = _csv_value(found.message_type, names[1:], cell)
        return None if nested is None else (names[0], dict([nested]))
    if _repeated(found):
        return names[0], [v for v in cell.split("|") if v]
    if found.type == FieldDescriptor.TYPE_BOOL:
        lowered = cell.strip().lower()
        value: Any = {"true": True, "1": True, "false": False, "0": False}.get(lowered, cell)
        return names[0], value
    return names[0], cell


def _repeated(found: FieldDescriptor) -> bool:
    # is_repeated in newer protobuf releases (where label is gone), label in older ones.
    flag = getattr(found, "is_repeated", None)
    if flag is None:
        return bool(getattr(found, "label", None) == FieldDescriptor.LABEL_REPEATED)
    return bool(flag)


def _merge(into: dict[str, Any], key: str, value: Any) -> None:
    if isinstance(value, dict) and isinstance(into.get(key), dict):
        for k, v in value.items():
            _merge(into[key], k, v)
    else:
        into[key] = value


def _csv_rows(kind: str, stream: TextIO) -> Iterator[Row]:
    reader = csv.DictReader(stream, strict=True)
    descriptor = cast(Descriptor, _MESSAGES[kind].DESCRIPTOR)
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            yield Row(reader.line_num, None, None, f"invalid CSV: {error}")
            continue
        line = reader.line_num  # where the row ends (a quoted cell can span lines)
        extra = record.pop(None, None)
        raw = {k: v for k, v in record.items() if k is not None}
        if extra:
            yield Row(line, raw, None, "the row has more cells than the header")
            continue
        value: dict[str, Any] = {}
        unknown = []
        for column, cell in raw.items():
            if cell is None or cell == "":
                continue
            converted = _csv_value(descriptor, column.strip().split("."), cell)
            if converted is None:
                unknown.append(column)
            else:
                _merge(value, *converted)
        if unknown:
            yield Row(line, raw, None, f"unknown columns: {', '.join(unknown)}")
            continue
        message, error_text = _to_message(kind, value)
        yield Row(line, raw, message, error_text)


def rows(kind: str, form: str, stream: TextIO) -> Iterator[Row]:
    return _csv_rows(kind, stream) if form == "csv" else _ndjson_rows(kind, stream)


def count_rows(form: str, path: Path) -> int:
    """The rows of the file, for the progress line (0: not known)."""
    with open_text(path) as stream:
        if form == "csv":
            try:
                return sum(1 for _ in csv.DictReader(stream))
            except csv.Error:
                return 0  # reported row by row when importing
        return sum(1 for line in stream if line.strip())


def open_text(path: Path) -> TextIO:
    # utf-8-sig: spreadsheet exports often start with a byte order mark.
    return open(path, encoding="utf-8-sig", newline="")
