"""API keys: their format, their scopes, and how their secrets are stored.

A key reads `jck_<id>_<secret>`: the id (12 random bytes, hex) finds the stored key, the secret
(32 random bytes, hex) proves it. Only a salted scrypt hash of the secret is stored (RFC 7914,
with the cost OWASP suggests for scrypt: N=2^14, r=8, p=1), so a copy of the database does not
give anyone a usable key; hashes are compared in constant time.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "jck"
_KEY = re.compile(rf"^{PREFIX}_([0-9a-f]{{24}})_([0-9a-f]{{64}})$")
_SALT_BYTES = 16
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class Scope(enum.IntEnum):
    """What a key may do; each scope includes the ones below it."""

    READ = 1  # reports, lookups, explanations and the conversion-event stream
    WRITE = 2  # and the events of journeys: entries, exits, touchpoints, goal events, marks
    ADMIN = 3  # and the definitions of journeys and conversions

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Scope:
        return cls[label.upper()]


@dataclass(frozen=True, slots=True)
class PresentedKey:
    key_id: str
    secret: str


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key as created: `token` is shown once and never stored."""

    key_id: str
    token: str
    salt: bytes
    secret_hash: bytes


def parse(token: str) -> PresentedKey | None:
    """The parts of a well-formed key, or None."""
    match = _KEY.match(token)
    if match is None:
        return None
    return PresentedKey(match.group(1), match.group(2))


def hash_secret(secret: str, salt: bytes) -> bytes:
    return hashlib.scrypt(secret.encode(), salt=salt, **_SCRYPT)


def matches(secret: str, salt: bytes, secret_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret, salt), secret_hash)


def generate() -> NewKey:
    key_id, secret = secrets.token_hex(12), secrets.token_hex(32)
    salt = secrets.token_bytes(_SALT_BYTES)
    return NewKey(key_id, f"{PREFIX}_{key_id}_{secret}", salt, hash_secret(secret, salt))
