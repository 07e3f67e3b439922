"""The TypeScript client (clients/node) drives the live server: its node:test suite runs here,
in development mode, with an API key, and over TLS and mutual TLS; and its example shows the
key is what gets a call in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from journey_conversions.server import App
from tests.clients.conftest import require, run_process, tls_env, unique_tenant
from tests.keys import create_key

NODE_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"
LIVE_TEST = ("node", "--test", "dist/test/live.test.js")
EXAMPLE = ("node", "dist/example.js")


async def npm_ci_when_missing(run: Callable[..., Awaitable[tuple[int, str]]]) -> None:
    if not (NODE_DIR / "node_modules" / ".bin" / "tsc").exists():
        code, out = await run("npm", "ci", "--no-audit", "--no-fund", cwd=NODE_DIR)
        assert code == 0, f"npm ci failed:\n{out}"


@pytest.fixture(scope="module")
async def node_built() -> AsyncIterator[None]:
    """clients/node compiled to dist/ once for the tests that run it with node directly."""
    require("node", "npm")

    async def run(*argv: str, cwd: Path) -> tuple[int, str]:
        return await run_process(*argv, cwd=cwd, env={})

    await npm_ci_when_missing(run)
    code, out = await run("npm", "run", "build", cwd=NODE_DIR)
    assert code == 0, f"npm run build failed:\n{out}"
    yield


async def node(*argv: str, target: str, env: dict[str, str]) -> tuple[int, str]:
    return await run_process(*argv, cwd=NODE_DIR, env={"JC_TARGET": target, **env})


def assert_live_test_passed(code: int, out: str) -> None:
    assert code == 0, f"the live test failed:\n{out}"
    # All three tests ran: none was skipped for want of JC_TARGET.
    assert "# pass 3" in out, out
    assert "# fail 0" in out, out
    assert "# skipped 0" in out, out


class TestNodeLiveTest:
    """The TypeScript live test defines, enters, records and reports, and checks error details."""

    async def test_node_live_test_passes_against_the_server(
        self,
        require_tools: Callable[..., None],
        run_command: Callable[..., Awaitable[tuple[int, str]]],
    ) -> None:
        require_tools("node", "npm")
        await npm_ci_when_missing(run_command)
        code, out = await run_command("npm", "test", cwd=NODE_DIR)
        assert_live_test_passed(code, out)


@pytest.mark.usefixtures("node_built")
class TestNodeCredentials:
    """connect()'s TLS settings and the calls' apiKey, against servers that check keys."""

    async def test_the_api_key_is_sent_and_without_it_calls_are_unauthenticated(
        self, keyed_app: App, database_url: str
    ) -> None:
        target = f"127.0.0.1:{keyed_app.port}"
        _, token = await create_key(database_url, unique_tenant("node-key"))

        code, out = await node(*LIVE_TEST, target=target, env={"JC_API_KEY": token})
        assert_live_test_passed(code, out)

        code, out = await node(*EXAMPLE, target=target, env={"JC_API_KEY": token})
        assert code == 0, f"the example failed with the key:\n{out}"
        code, out = await node(*EXAMPLE, target=target, env={})
        assert code != 0, out
        assert "failed: code 16 " in out, out  # UNAUTHENTICATED

    async def test_a_key_over_tls_verified_by_the_test_ca(
        self, tls_app: App, database_url: str, pki: Path
    ) -> None:
        target = f"127.0.0.1:{tls_app.port}"
        _, token = await create_key(database_url, unique_tenant("node-tls"))

        code, out = await node(*EXAMPLE, target=target, env={"JC_API_KEY": token, **tls_env(pki)})
        assert code == 0, f"the example failed over TLS:\n{out}"
        assert '"journeyId": "welcome"' in out, out
        # Plaintext to a TLS server gets no answer.
        code, out = await node(*EXAMPLE, target=target, env={"JC_API_KEY": token})
        assert code != 0, out
        assert "failed: code 14 " in out, out  # UNAVAILABLE

    async def test_a_client_certificate_names_the_tenant_over_mutual_tls(
        self, mtls_app: App, pki: Path
    ) -> None:
        # The target is an address; the server's certificate is checked for "localhost".
        env = {**tls_env(pki, client_certificate=True), "JC_TLS_SERVER_NAME": "localhost"}
        code, out = await node(*LIVE_TEST, target=f"127.0.0.1:{mtls_app.port}", env=env)
        assert_live_test_passed(code, out)
