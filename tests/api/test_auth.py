"""Who may call, through a real server that checks API keys: the key names the tenant, its
scope bounds what it may do, a revoked key stops working on every replica within the recheck
interval, and health stays open to operators while reflection is off unless asked for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
import grpc
import pytest
from google.protobuf.message import Message
from grpc_reflection.v1alpha import reflection_pb2
from journeys.conversions.v1 import service_pb2 as pb
from journeys.conversions.v1 import service_pb2_grpc

from journey_conversions import config as config_module
from journey_conversions.auth import METHOD_SCOPES
from journey_conversions.config import ConfigError
from journey_conversions.keys import Scope
from journey_conversions.server import App, build, check_auth, is_loopback
from tests.builders import define_journey, error_reason, goal, message
from tests.conftest import KEY_RECHECK_SECONDS, KEYED_SERVER
from tests.keys import bearer, create_key, revoke_key
from tests.processes import health

if TYPE_CHECKING:
    from tests.builders import Stub

SERVICE = pb.DESCRIPTOR.services_by_name["JourneyConversionsService"]


async def code_of(stub: Stub, method: str, metadata: Any) -> grpc.StatusCode:
    """The status of calling `method` with an empty request (OK, or the error's code)."""
    descriptor = SERVICE.methods_by_name[method]
    request_type: Any = getattr(pb, descriptor.input_type.name)
    request: Message = request_type()
    try:
        if descriptor.client_streaming:
            # Written once the server accepted the stream (its headers), then half-closed.
            call = getattr(stub, method)(metadata=metadata, timeout=10)
            await call.initial_metadata()
            if not call.done():
                await call.write(request)
                await call.done_writing()
            async for _ in call:
                pass
        elif descriptor.server_streaming:
            stream = getattr(stub, method)(request, metadata=metadata, timeout=1)
            async for _ in stream:
                break
        else:
            await getattr(stub, method)(request, metadata=metadata, timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


class TestScopes:
    def test_every_rpc_needs_a_scope(self) -> None:
        assert set(METHOD_SCOPES) == {m.name for m in SERVICE.methods}

    @pytest.mark.parametrize("scope", list(Scope))
    async def test_a_key_may_call_what_its_scope_covers_and_nothing_else(
        self, keyed_stub: Stub, database_url: str, scope: Scope
    ) -> None:
        _, token = await create_key(database_url, "acme", scope)
        for method, needed in METHOD_SCOPES.items():
            code = await code_of(keyed_stub, method, bearer(token))
            if scope < needed:
                assert code == grpc.StatusCode.PERMISSION_DENIED, method
            else:
                # An empty request is refused for what it lacks, not for who sent it.
                assert code not in (
                    grpc.StatusCode.PERMISSION_DENIED,
                    grpc.StatusCode.UNAUTHENTICATED,
                    grpc.StatusCode.INTERNAL,
                    grpc.StatusCode.UNKNOWN,
                ), (method, code)


class TestCredentials:
    @pytest.mark.parametrize(
        ("metadata", "reason"),
        [
            ((), "API_KEY_MISSING"),
            ((("authorization", "Basic dXNlcjpwYXNz"),), "API_KEY_MALFORMED"),
            ((("authorization", "Bearer"),), "API_KEY_MALFORMED"),
            ((("authorization", "Bearer not-a-key"),), "API_KEY_MALFORMED"),
            ((("authorization", "Bearer jck_" + "0" * 24 + "_" + "0" * 64),), "API_KEY_INVALID"),
        ],
    )
    async def test_missing_malformed_and_unknown_keys_are_unauthenticated(
        self, keyed_stub: Stub, metadata: Any, reason: str
    ) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await keyed_stub.ListJourneys(pb.ListJourneysRequest(), metadata=metadata)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error_reason(caught.value) == reason

    async def test_a_wrong_secret_for_a_real_key_id_is_unauthenticated(
        self, keyed_stub: Stub, database_url: str
    ) -> None:
        key_id, token = await create_key(database_url, "acme")
        forged = f"jck_{key_id}_" + ("1" if token[-1] != "1" else "2") * 64
        for _ in range(2):  # the second time, nothing remembered lets it through either
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await keyed_stub.ListJourneys(pb.ListJourneysRequest(), metadata=bearer(forged))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert error_reason(caught.value) == "API_KEY_INVALID"
        assert await keyed_stub.ListJourneys(pb.ListJourneysRequest(), metadata=bearer(token))

    async def test_the_key_names_the_tenant(self, keyed_stub: Stub, database_url: str) -> None:
        _, acme = await create_key(database_url, "acme")
        _, globex = await create_key(database_url, "globex")
        await keyed_stub.DefineJourney(
            define_journey("welcome", [message("m1")], goal("ORDER_PLACED")), metadata=bearer(acme)
        )
        mine = await keyed_stub.ListJourneys(pb.ListJourneysRequest(), metadata=bearer(acme))
        theirs = await keyed_stub.ListJourneys(pb.ListJourneysRequest(), metadata=bearer(globex))
        assert [j.journey_id for j in mine.journeys] == ["welcome"]
        assert list(theirs.journeys) == []

    async def test_a_header_cannot_choose_another_tenant(
        self, keyed_stub: Stub, database_url: str
    ) -> None:
        _, acme = await create_key(database_url, "acme")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await keyed_stub.ListJourneys(
                pb.ListJourneysRequest(), metadata=(*bearer(acme), ("x-tenant-id", "globex"))
            )
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(caught.value) == "TENANT_FROM_KEY"
        # Naming the key's own tenant is harmless.
        await keyed_stub.ListJourneys(
            pb.ListJourneysRequest(), metadata=(*bearer(acme), ("x-tenant-id", "acme"))
        )

    async def test_only_a_salted_hash_of_the_secret_is_stored(self, database_url: str) -> None:
        key_id, token = await create_key(database_url, "acme")
        secret = token.rsplit("_", 1)[1]
        conn = await asyncpg.connect(database_url)
        try:
            row = await conn.fetchrow("select * from api_keys where key_id = $1", key_id)
        finally:
            await conn.close()
        assert row is not None
        stored = b"".join(
            v if isinstance(v, bytes) else str(v).encode() for v in dict(row).values()
        )
        assert secret.encode() not in stored and token.encode() not in stored
        assert bytes.fromhex(secret) not in stored
        assert len(row["secret_hash"]) == 32 and len(row["salt"]) == 16


@pytest.fixture
async def second_replica(keyed_app: App, database_url: str) -> AsyncIterator[Stub]:
    """Another keyed server on the same database, as a second replica."""
    replica = await build(config_module.from_values(KEYED_SERVER), database_url, "127.0.0.1:0")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{replica.port}") as channel:
        yield service_pb2_grpc.JourneyConversionsServiceStub(channel)
    await replica.stop(grace=1)


class TestRevocation:
    async def test_a_revoked_key_fails_on_every_replica_after_the_recheck_interval(
        self, keyed_stub: Stub, second_replica: Stub, database_url: str
    ) -> None:
        key_id, token = await create_key(database_url, "acme", Scope.READ)
        replicas = (keyed_stub, second_replica)
        for stub in replicas:  # both verify the key, and remember it
            await stub.ListJourneys(pb.ListJourneysRequest(), metadata=bearer(token))
        await revoke_key(database_url, key_id)
        await asyncio.sleep(KEY_RECHECK_SECONDS + 0.3)
        for stub in replicas:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.ListJourneys(pb.ListJourneysRequest(), metadata=bearer(token))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert error_reason(caught.value) == "API_KEY_INVALID"


async def reflected_services(port: int) -> set[str]:
    """The services server reflection lists on this port (raises AioRpcError without it)."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        info = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        call = info(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
        async for reply in call:
            assert isinstance(reply, reflection_pb2.ServerReflectionResponse)
            return {s.name for s in reply.list_services_response.service}
    raise AssertionError("no reflection reply")


class TestOperatorAccess:
    async def test_health_needs_no_key(self, keyed_app: App) -> None:
        assert await health(keyed_app.port) == "SERVING"

    async def test_reflection_is_off_unless_asked_for(self, keyed_app: App) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await reflected_services(keyed_app.port)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED

    async def test_reflection_on_lists_the_service(self, database_url: str) -> None:
        config = config_module.from_values([*KEYED_SERVER, "--reflection", "on"])
        app = await build(config, database_url, "127.0.0.1:0")
        try:
            assert SERVICE.full_name in await reflected_services(app.port)
        finally:
            await app.stop(grace=1)


class TestDevelopmentAuth:
    @pytest.mark.parametrize(
        ("listen", "loopback"),
        [
            ("127.0.0.1:50051", True),
            ("127.8.9.10:1", True),
            ("[::1]:50051", True),
            ("localhost:50051", True),
            ("unix:/tmp/jc.sock", True),
            ("0.0.0.0:50051", False),
            ("[::]:50051", False),
            ("10.1.2.3:50051", False),
            ("jc.internal:50051", False),
        ],
    )
    def test_loopback_addresses(self, listen: str, loopback: bool) -> None:
        assert is_loopback(listen) is loopback

    def test_refused_on_a_network_address_unless_insisted_on(self) -> None:
        network = ["--auth", "dev", "--listen", "0.0.0.0:50051"]
        with pytest.raises(ConfigError, match="not a loopback"):
            check_auth(config_module.from_values(network))
        check_auth(config_module.from_values([*network, "--insecure-dev-auth-on-network", "yes"]))
        check_auth(config_module.from_values(["--auth", "dev", "--listen", "127.0.0.1:1"]))
        check_auth(config_module.from_values(["--listen", "0.0.0.0:50051"]))  # keys: fine

    def test_keys_are_the_default_and_settings_are_checked(self) -> None:
        default = config_module.from_values([])
        assert default.auth == "keys" and default.reflection is False
        assert config_module.from_values(["--auth", "dev"]).reflection is True
        for bad in (["--auth", "none"], ["--reflection", "maybe"]):
            with pytest.raises(ConfigError):
                config_module.from_values(bad)
