"""Opaque page tokens: the last key of the previous page, base64-encoded."""

from __future__ import annotations

import base64
import binascii
import json

from journey_conversions.errors import InvalidArgument, Violation


def encode(*key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode(token: str, parts: int) -> tuple[str, ...]:
    if not token:
        return ("",) * parts
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        key = None
    valid = isinstance(key, list) and len(key) == parts
    if not valid or not all(isinstance(k, str) and "\x00" not in k for k in key):
        raise InvalidArgument([Violation("page_token", "is not a token this service issued")])
    return tuple(key)
