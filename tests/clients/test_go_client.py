"""The Go client (clients/go) drives the live server: its go test suite runs here, in
development mode, with an API key (package jcauth's per-RPC credentials), and over TLS and
mutual TLS; and its example shows the key is what gets a call in."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from journey_conversions.server import App
from tests.clients.conftest import run_process, tls_env, unique_tenant
from tests.keys import create_key

GO_DIR = Path(__file__).resolve().parents[2] / "clients" / "go"
GO_TESTS = (
    "TestJourneyFlowIsCountedInTheReport",
    "TestUnknownJourneyIsNotFoundWithReason",
    "TestInvalidTouchpointIsInvalidArgumentWithFieldViolations",
)
# offline-go builds against Debian's Go sources (clients/go/ensure-toolchain).
GO_TOOLS = ("go", "/usr/share/gocode/src/google.golang.org/grpc")
LIVE_TEST = ("test", "-count=1", "-v", "./livetest")
EXAMPLE = ("run", "./example")


async def offline_go(*argv: str, target: str, env: dict[str, str]) -> tuple[int, str]:
    return await run_process(
        str(GO_DIR / "offline-go"), *argv, cwd=GO_DIR, env={"JC_TARGET": target, **env}
    )


def assert_live_test_passed(code: int, out: str) -> None:
    assert code == 0, f"go test failed:\n{out}"
    for name in GO_TESTS:
        assert f"--- PASS: {name}" in out, out
    assert "--- SKIP" not in out, out


class TestGoLiveTest:
    """The Go live test defines, enters, records and reports, and checks error details."""

    async def test_go_live_test_passes_against_the_server(
        self,
        require_tools: Callable[..., None],
        run_command: Callable[..., Awaitable[tuple[int, str]]],
    ) -> None:
        require_tools(*GO_TOOLS)
        code, out = await run_command(str(GO_DIR / "offline-go"), *LIVE_TEST, cwd=GO_DIR)
        assert_live_test_passed(code, out)


class TestGoCredentials:
    """jcauth's API key and TLS credentials, against servers that check keys."""

    async def test_the_api_key_is_sent_and_without_it_calls_are_unauthenticated(
        self, require_tools: Callable[..., None], keyed_app: App, database_url: str
    ) -> None:
        require_tools(*GO_TOOLS)
        target = f"127.0.0.1:{keyed_app.port}"
        _, token = await create_key(database_url, unique_tenant("go-key"))

        code, out = await offline_go(*LIVE_TEST, target=target, env={"JC_API_KEY": token})
        assert_live_test_passed(code, out)

        code, out = await offline_go(*EXAMPLE, target=target, env={"JC_API_KEY": token})
        assert code == 0, f"the example failed with the key:\n{out}"
        code, out = await offline_go(*EXAMPLE, target=target, env={})
        assert code != 0, out
        assert "DefineJourney: Unauthenticated " in out, out

    async def test_a_key_over_tls_verified_by_the_test_ca(
        self, require_tools: Callable[..., None], tls_app: App, database_url: str, pki: Path
    ) -> None:
        require_tools(*GO_TOOLS)
        target = f"127.0.0.1:{tls_app.port}"
        _, token = await create_key(database_url, unique_tenant("go-tls"))

        env = {"JC_API_KEY": token, **tls_env(pki)}
        code, out = await offline_go(*EXAMPLE, target=target, env=env)
        assert code == 0, f"the example failed over TLS:\n{out}"
        # protojson varies its whitespace on purpose (per build of the binary): match around it.
        assert re.search(r'"journeyId":\s+"welcome"', out), out

    async def test_a_client_certificate_names_the_tenant_over_mutual_tls(
        self, require_tools: Callable[..., None], mtls_app: App, pki: Path
    ) -> None:
        require_tools(*GO_TOOLS)
        # The target is an address; the server's certificate is checked for "localhost".
        env = {**tls_env(pki, client_certificate=True), "JC_TLS_SERVER_NAME": "localhost"}
        code, out = await offline_go(*LIVE_TEST, target=f"127.0.0.1:{mtls_app.port}", env=env)
        assert_live_test_passed(code, out)
