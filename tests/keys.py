"""API keys for tests: created in the test's database the way `keys create` does, and the
metadata that presents them."""

from __future__ import annotations

import asyncpg

from journey_conversions.keys import Scope
from journey_conversions.store import api_keys


async def create_key(
    database_url: str, tenant_id: str, scope: Scope = Scope.ADMIN, name: str = ""
) -> tuple[str, str]:
    """(key id, token) of a new key."""
    conn = await asyncpg.connect(database_url)
    try:
        key, token = await api_keys.create(conn, tenant_id, name, scope)
    finally:
        await conn.close()
    return key.key_id, token


async def revoke_key(database_url: str, key_id: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await api_keys.revoke(conn, key_id)
    finally:
        await conn.close()


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)
