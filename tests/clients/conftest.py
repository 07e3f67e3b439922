"""Fixtures of the client tests: a client of the live server with a tenant of its own, the
check that decides whether a missing Node or Go toolchain skips a test or fails it, a way to
run a command without blocking the event loop the server shares, and servers that check API
keys over TLS and mutual TLS with test certificates (tests/certs.py)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from pathlib import Path

import pytest

from journey_conversions_client import JourneyConversionsClient
from tests import certs


@pytest.fixture
def tenant_id() -> str:
    """A tenant no other test uses, so every figure read back is this test's alone."""
    return f"py-client-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def client(service_target: str, tenant_id: str) -> AsyncIterator[JourneyConversionsClient]:
    async with JourneyConversionsClient(service_target, tenant_id=tenant_id) as c:
        yield c


@pytest.fixture
def require_tools() -> Callable[..., None]:
    """A check that skips the test when a tool is missing, except in CI (CI=true), where the
    test fails instead: CI must run every language's live test."""
    return _require_tools


def require(*tools: str) -> None:
    """`require_tools`, for module-scoped fixtures."""
    _require_tools(*tools)


def _require_tools(*tools: str) -> None:
    """Each tool is a command on PATH, or an absolute path that must exist."""
    missing = [
        tool
        for tool in tools
        if not (Path(tool).exists() if tool.startswith("/") else shutil.which(tool))
    ]
    if not missing:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"{', '.join(missing)} not installed; CI must run this test: scripts/ci-clients"
        )
    pytest.skip(f"{', '.join(missing)} not installed (run scripts/ci-clients to install)")


RunCommand = Callable[..., Awaitable[tuple[int, str]]]


async def run_process(
    *argv: str, cwd: Path, env: Mapping[str, str], limit: float = 900
) -> tuple[int, str]:
    """Runs a command without blocking the event loop the server shares; gives back its exit
    status and its output. Its environment is this one's without the clients' JC_* settings,
    plus `env`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("JC_")}
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env={**inherited, **env},
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    code = proc.returncode if proc.returncode is not None else -1
    return code, out.decode(errors="replace")


@pytest.fixture
def run_command(service_target: str) -> RunCommand:
    """Runs a command in a directory with JC_TARGET set to the live server (development mode),
    without blocking the event loop the server shares; gives back its exit status and its
    output."""

    async def run(*argv: str, cwd: Path, limit: float = 900) -> tuple[int, str]:
        return await run_process(*argv, cwd=cwd, env={"JC_TARGET": service_target}, limit=limit)

    return run


# The tenant and scope the test client certificate names (its URI SANs).
CERT_TENANT = "cert-tenant"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a CA (test-ca.pem), a server certificate for localhost and 127.0.0.1
    (server.pem, server-key.pem) and a client certificate of CERT_TENANT with the admin scope
    (client.pem, client-key.pem), all made with openssl."""
    directory = tmp_path_factory.mktemp("client-pki")
    ca = certs.make_ca(directory)
    certs.server_pair(ca, directory)
    pair = certs.client_pair(ca, directory, CERT_TENANT, "admin")
    pair.cert.rename(directory / "client.pem")
    pair.key.rename(directory / "client-key.pem")
    return directory


def tls_env(pki: Path, *, client_certificate: bool = False) -> dict[str, str]:
    """The clients' TLS settings (JC_TLS_*) for the test CA, and its client certificate."""
    env = {"JC_TLS_CA": str(pki / "test-ca.pem")}
    if client_certificate:
        env |= {"JC_TLS_CERT": str(pki / "client.pem"), "JC_TLS_KEY": str(pki / "client-key.pem")}
    return env


def unique_tenant(prefix: str) -> str:
    """A tenant name of its own for a key, so the figures read back are one test's alone."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
