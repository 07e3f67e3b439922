"""Per-contact serialization: every write that can change a contact's attribution holds the
contact's transaction-scoped advisory lock, so a contact's history is decided by one
transaction at a time, on any replica."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import asyncpg


def contact_lock_key(tenant_id: str, contact_id: str) -> int:
    """A signed 64-bit key; a collision only serializes two contacts, never mixes them."""
    digest = hashlib.blake2b(f"{tenant_id}\x00{contact_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def lock_contacts(conn: asyncpg.Connection, tenant_id: str, contacts: Iterable[str]) -> None:
    """Locks in ascending key order, so two batches sharing contacts cannot deadlock."""
    keys = sorted({contact_lock_key(tenant_id, c) for c in contacts})
    if keys:
        # unnest yields the array in order, and the locks are taken row by row in that order.
        await conn.execute("select pg_advisory_xact_lock(k) from unnest($1::bigint[]) as k", keys)


async def lock_journey_definition(
    conn: asyncpg.Connection, tenant_id: str, journey_id: str
) -> None:
    """Serializes definitions of one journey, including its very first one (when there is no
    row yet for FOR UPDATE to lock)."""
    key = contact_lock_key(tenant_id, f"\x00journey\x00{journey_id}")
    await conn.execute("select pg_advisory_xact_lock($1)", key)
