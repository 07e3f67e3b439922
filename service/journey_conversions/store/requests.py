"""Idempotency of request-style writes: the first response is returned to every repeat."""

from __future__ import annotations

import hashlib

import asyncpg

from journey_conversions.errors import idempotency_conflict


def payload_hash(method: str, payload: bytes) -> bytes:
    return hashlib.sha256(method.encode() + b"\x00" + payload).digest()


async def claim(
    conn: asyncpg.Connection, tenant_id: str, method: str, request_id: str, payload: bytes
) -> bytes | None:
    """Claims the request id inside the caller's transaction.

    Returns None when the request is new (the caller does the work, then calls `finish`), or
    the stored response of the first request with the same payload. A concurrent repeat waits
    on the primary key until the first commits, then sees its response.
    """
    digest = payload_hash(method, payload)
    inserted = await conn.fetchval(
        "insert into requests (tenant_id, method, request_id, payload_hash)"
        " values ($1, $2, $3, $4) on conflict do nothing returning true",
        tenant_id,
        method,
        request_id,
        digest,
    )
    if inserted:
        return None
    row = await conn.fetchrow(
        "select payload_hash, response from requests"
        " where tenant_id = $1 and method = $2 and request_id = $3",
        tenant_id,
        method,
        request_id,
    )
    assert row is not None
    if bytes(row["payload_hash"]) != digest or row["response"] is None:
        raise idempotency_conflict(method, request_id)
    return bytes(row["response"])


async def finish(
    conn: asyncpg.Connection, tenant_id: str, method: str, request_id: str, response: bytes
) -> None:
    await conn.execute(
        "update requests set response = $4"
        " where tenant_id = $1 and method = $2 and request_id = $3",
        tenant_id,
        method,
        request_id,
        response,
    )
