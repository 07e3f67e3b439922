"""Per-contact serialization: every write that can change a contact's attribution holds the
contact's transaction-scoped advisory lock, so a contact's history is decided by one
transaction at a time, on any replica.

Keys are 64-bit hashes computed by Postgres (hashtextextended), so every replica agrees on
them whatever its language or version; a collision only serializes two contacts, never mixes
their data.
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg


def locking_contacts(contacts: str) -> str:
    """A scalar subquery that locks the contacts in the text[] parameter `contacts` (of tenant
    $1), in ascending key order so that two transactions sharing contacts cannot deadlock
    (migration 0009), for a statement that has work of its own to do in the same round trip.
    As a subquery it runs once per statement, when its value is first needed."""
    return f"(select lock_contacts($1, {contacts}::text[]))"


_LOCK_CONTACTS = "select " + locking_contacts("$2")


async def lock_contacts(conn: asyncpg.Connection, tenant_id: str, contacts: Iterable[str]) -> None:
    contact_list = list(set(contacts))
    if contact_list:
        await conn.execute(_LOCK_CONTACTS, tenant_id, contact_list)


async def lock_journey_definition(
    conn: asyncpg.Connection, tenant_id: str, journey_id: str
) -> None:
    """Serializes definitions of one journey, including its very first one (when there is no
    row yet for FOR UPDATE to lock)."""
    await conn.execute(
        "select pg_advisory_xact_lock(hashtextextended($1 || chr(2) || $2, 0))",
        tenant_id,
        journey_id,
    )
