"""The stored API keys of every tenant: created, listed, revoked, and found by id."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from journey_conversions import keys


@dataclass(frozen=True, slots=True)
class StoredKey:
    tenant_id: str
    key_id: str
    name: str
    scope: keys.Scope
    salt: bytes
    secret_hash: bytes
    create_time: datetime
    revoke_time: datetime | None


def _stored(row: asyncpg.Record) -> StoredKey:
    return StoredKey(
        row["tenant_id"],
        row["key_id"],
        row["name"],
        keys.Scope(row["scope"]),
        bytes(row["salt"]),
        bytes(row["secret_hash"]),
        row["create_time"],
        row["revoke_time"],
    )


async def create(
    conn: asyncpg.Connection, tenant_id: str, name: str, scope: keys.Scope
) -> tuple[StoredKey, str]:
    """A new key and its token (shown once: only its hash is stored)."""
    new = keys.generate()
    row = await conn.fetchrow(
        "insert into api_keys (tenant_id, key_id, name, scope, salt, secret_hash)"
        " values ($1, $2, $3, $4, $5, $6) returning *",
        tenant_id,
        new.key_id,
        name,
        int(scope),
        new.salt,
        new.secret_hash,
    )
    assert row is not None
    return _stored(row), new.token


async def find(conn: asyncpg.Pool | asyncpg.Connection, key_id: str) -> list[StoredKey]:
    """The keys with this id (one, unless two tenants drew the same 96 random bits)."""
    rows = await conn.fetch("select * from api_keys where key_id = $1", key_id)
    return [_stored(r) for r in rows]


async def list_keys(conn: asyncpg.Connection, tenant_id: str | None) -> list[StoredKey]:
    rows = await conn.fetch(
        "select * from api_keys where $1::text is null or tenant_id = $1"
        " order by tenant_id, create_time, key_id",
        tenant_id,
    )
    return [_stored(r) for r in rows]


async def revoke(conn: asyncpg.Connection, key_id: str) -> list[StoredKey]:
    """Revokes the key (its first revocation time stays); returns what was found."""
    rows = await conn.fetch(
        "update api_keys set revoke_time = coalesce(revoke_time, now())"
        " where key_id = $1 returning *",
        key_id,
    )
    return [_stored(r) for r in rows]
