"""TLS and mutual TLS through a real server with certificates made by openssl for the test
(tests/certs.py), called through the Python client's TLS settings: the server's certificate is
verified, a client certificate signed by the client CA can name the tenant and scope, and
without a verified certificate or key nothing gets in."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions.keys import Scope
from journey_conversions.server import App
from journey_conversions_client import (
    NO_RETRY,
    JourneyConversionsClient,
    JourneyConversionsError,
    TlsSettings,
)
from tests import certs
from tests.builders import define_journey, goal, message
from tests.keys import create_key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate, client certificates for acme (read, admin) and for no tenant,
    and a certificate from a CA the server does not trust."""
    directory = tmp_path_factory.mktemp("pki")
    ca = certs.make_ca(directory)
    certs.server_pair(ca, directory)
    certs.client_pair(ca, directory, "acme", "read")
    certs.client_pair(ca, directory, "acme", "admin")
    certs.client_pair(ca, directory, None)
    stranger = certs.make_ca(directory, "stranger-ca")
    certs.issue(stranger, directory, "stranger", ["URI:urn:journey-conversions:tenant:acme"])
    return directory


def settings(pki: Path, client: str | None = None, ca: str = "test-ca") -> TlsSettings:
    if client is None:
        return TlsSettings(ca_file=pki / f"{ca}.pem")
    return TlsSettings(pki / f"{ca}.pem", pki / f"{client}.pem", pki / f"{client}-key.pem")


def client(
    app: App, tls: TlsSettings | None, api_key: str | None = None
) -> JourneyConversionsClient:
    return JourneyConversionsClient(
        f"127.0.0.1:{app.port}", tls=tls, api_key=api_key, timeout=5, retry=NO_RETRY
    )


async def journeys(c: JourneyConversionsClient) -> list[str]:
    async with c:
        listed = await c.list_journeys(pb.ListJourneysRequest())
    return [j.journey_id for j in listed.journeys]


async def code_of_listing(c: JourneyConversionsClient) -> grpc.StatusCode:
    with pytest.raises(JourneyConversionsError) as caught:
        await journeys(c)
    return caught.value.code


class TestTls:
    async def test_a_key_over_tls_works_and_plaintext_does_not(
        self, tls_app: App, database_url: str, pki: Path
    ) -> None:
        _, token = await create_key(database_url, "acme")
        assert await journeys(client(tls_app, settings(pki), token)) == []
        assert await code_of_listing(client(tls_app, None, token)) == grpc.StatusCode.UNAVAILABLE

    async def test_a_server_certificate_from_another_ca_is_refused(
        self, tls_app: App, database_url: str, pki: Path
    ) -> None:
        _, token = await create_key(database_url, "acme")
        untrusted = settings(pki, ca="stranger-ca")
        assert await code_of_listing(client(tls_app, untrusted, token)) == (
            grpc.StatusCode.UNAVAILABLE
        )


class TestMutualTls:
    async def test_the_client_certificate_names_tenant_and_scope(
        self, mtls_app: App, database_url: str, pki: Path
    ) -> None:
        async with client(mtls_app, settings(pki, "client-acme-admin")) as admin:
            await admin.define_journey(
                define_journey("welcome", [message("m1")], goal("ORDER_PLACED"))
            )
        assert await journeys(client(mtls_app, settings(pki, "client-acme-read"))) == ["welcome"]
        _, globex = await create_key(database_url, "globex", Scope.READ)
        # A certificate without a tenant leaves it to the key.
        assert (
            await journeys(client(mtls_app, settings(pki, "client-nobody-default"), globex)) == []
        )

        async with client(mtls_app, settings(pki, "client-acme-read")) as reader:
            with pytest.raises(JourneyConversionsError) as denied:
                await reader.define_journey(
                    define_journey("other", [message("m1")], goal("ORDER_PLACED"))
                )
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED

    async def test_a_key_and_a_certificate_must_agree_on_the_tenant(
        self, mtls_app: App, database_url: str, pki: Path
    ) -> None:
        _, globex = await create_key(database_url, "globex")
        _, acme = await create_key(database_url, "acme")
        mismatch = client(mtls_app, settings(pki, "client-acme-read"), globex)
        assert await code_of_listing(mismatch) == grpc.StatusCode.PERMISSION_DENIED
        assert await journeys(client(mtls_app, settings(pki, "client-acme-read"), acme)) == []

    async def test_no_certificate_or_an_untrusted_one_gets_nothing(
        self, mtls_app: App, database_url: str, pki: Path
    ) -> None:
        _, token = await create_key(database_url, "acme")
        # Without a client certificate the handshake fails, key or not.
        assert await code_of_listing(client(mtls_app, settings(pki), token)) == (
            grpc.StatusCode.UNAVAILABLE
        )
        stranger = TlsSettings(pki / "test-ca.pem", pki / "stranger.pem", pki / "stranger-key.pem")
        assert await code_of_listing(client(mtls_app, stranger)) == grpc.StatusCode.UNAVAILABLE
        # A trusted certificate that names no tenant, without a key, is not enough.
        nobody = client(mtls_app, settings(pki, "client-nobody-default"))
        assert await code_of_listing(nobody) == grpc.StatusCode.UNAUTHENTICATED
