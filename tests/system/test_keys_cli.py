"""`journey-conversions keys create|list|revoke` as an operator runs them, against a real
`journey-conversions serve --auth keys` process; and `serve` refusing development auth on a
network address."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import grpc
import pytest
from journeys.conversions.v1 import service_pb2 as pb
from journeys.conversions.v1 import service_pb2_grpc

from tests.builders import define_journey, goal, message
from tests.keys import bearer
from tests.processes import COMMAND, Spawn, child_env, serve


async def keys(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [str(COMMAND), "keys", "--database-url", database_url, *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=60,
    )


async def created(database_url: str, *args: str) -> dict[str, Any]:
    done = await keys(database_url, "--json", "create", *args)
    assert done.returncode == 0, done.stderr
    key = json.loads(done.stdout)
    assert isinstance(key, dict)
    return key


class TestKeysCommand:
    async def test_create_list_use_and_revoke(self, database_url: str) -> None:
        admin = await created(
            database_url, "--tenant", "acme", "--name", "engine", "--scope", "admin"
        )
        reader = await created(database_url, "--tenant", "acme", "--scope", "read")
        assert admin["key"].startswith(f"jck_{admin['key_id']}_")
        assert (admin["tenant"], admin["scope"], admin["name"]) == ("acme", "admin", "engine")

        listed = await keys(database_url, "--json", "list", "--tenant", "acme")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert {r["key_id"]: r["scope"] for r in rows} == {
            admin["key_id"]: "admin",
            reader["key_id"]: "read",
        }
        assert admin["key"] not in listed.stdout and reader["key"] not in listed.stdout
        table = await keys(database_url, "list")
        assert admin["key_id"] in table.stdout and "engine" in table.stdout

        async with (
            serve(
                "--database-url", database_url, "--auth", "keys", "--key-recheck-seconds", "0.2"
            ) as server,
            grpc.aio.insecure_channel(server.target) as channel,
        ):
            stub = service_pb2_grpc.JourneyConversionsServiceStub(channel)
            await stub.DefineJourney(
                define_journey("welcome", [message("m1")], goal("ORDER_PLACED")),
                metadata=bearer(admin["key"]),
            )
            seen = await stub.ListJourneys(pb.ListJourneysRequest(), metadata=bearer(reader["key"]))
            assert [j.journey_id for j in seen.journeys] == ["welcome"]

            revoked = await keys(database_url, "revoke", reader["key_id"])
            assert revoked.returncode == 0, revoked.stderr
            assert reader["key_id"] in revoked.stdout
            await asyncio.sleep(0.5)
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListJourneys(pb.ListJourneysRequest(), metadata=bearer(reader["key"]))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # The other key of the tenant still works.
            await stub.ListJourneys(pb.ListJourneysRequest(), metadata=bearer(admin["key"]))

        rows = json.loads((await keys(database_url, "--json", "list")).stdout)
        assert [r["revoke_time"] is not None for r in rows if r["key_id"] == reader["key_id"]] == [
            True
        ]

    async def test_revoking_an_unknown_key_fails(self, database_url: str) -> None:
        done = await keys(database_url, "revoke", "0" * 24)
        assert done.returncode == 1
        assert "no key" in done.stderr

    async def test_a_bad_tenant_or_scope_is_refused(self, database_url: str) -> None:
        for args in (("--tenant", "has space"), ("--tenant", "acme", "--scope", "root")):
            done = await keys(database_url, "create", *args)
            assert done.returncode == 2, done.stdout
        listed = await keys(database_url, "--json", "list")
        assert json.loads(listed.stdout) == []


class TestServeRefusesBadSettings:
    async def test_an_unknown_event_loop_exits_with_the_choices(
        self, spawn: Spawn, database_url: str
    ) -> None:
        process = await spawn("serve", "--database-url", database_url, "--event-loop", "trio")
        assert await process.finish() == 2
        assert "--event-loop must be one of uvloop, asyncio" in process.output()
        assert not process.logged("serving")

    async def test_dev_auth_on_a_network_address_exits_with_the_reason(
        self, spawn: Spawn, database_url: str
    ) -> None:
        process = await spawn(
            "serve", "--database-url", database_url, "--auth", "dev", "--listen", "0.0.0.0:0"
        )
        assert await process.finish() == 2
        (refusal,) = process.logged("refusing to start")
        assert "not a loopback address" in refusal["reason"]
        assert not process.logged("serving")
