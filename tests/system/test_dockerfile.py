"""The Dockerfile, checked without a Docker engine: its base image and user, its ports and
settings against the service's configuration, its build context, and its HEALTHCHECK command
run for real against a live server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from grpc_health.v1 import health_pb2

from journey_conversions import config as config_module
from journey_conversions.server import App

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD / HEALTHCHECK CMD / ENTRYPOINT."""
        text = self.args
        if self.keyword == "HEALTHCHECK":
            text = text[text.index("CMD ") + len("CMD ") :]
        parsed = json.loads(text)
        assert isinstance(parsed, list) and all(isinstance(a, str) for a in parsed)
        return parsed


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, with comments dropped and continued lines joined."""
    lines: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        lines.append(pending + stripped)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    parsed = []
    for line in lines:
        keyword, _, args = line.partition(" ")
        parsed.append(Instruction(keyword.upper(), args.strip()))
    return parsed


def only(keyword: str) -> Instruction:
    found = [i for i in instructions() if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {len(found)}"
    return found[0]


def env_values() -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in instructions():
        if instruction.keyword == "ENV":
            for pair in instruction.args.split():
                name, _, value = pair.partition("=")
                values[name] = value
    return values


def port_of(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def copies() -> list[tuple[str, str]]:
    """(source, destination) of every COPY, relative to the build context / WORKDIR."""
    result: list[tuple[str, str]] = []
    for instruction in instructions():
        if instruction.keyword == "COPY":
            *sources, destination = instruction.args.split()
            assert not any(s.startswith("--from") for s in sources), "no multi-stage copies"
            result.extend((source, destination) for source in sources)
    return result


def ignore_patterns() -> list[re.Pattern[str]]:
    """.dockerignore's patterns as regular expressions over context-relative paths."""
    patterns = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assert not line.startswith("!"), "exceptions are not used"
        regex = ""
        rest = line.strip("/")
        while rest:
            if rest.startswith("**/"):
                regex += "(?:.*/)?"
                rest = rest[3:]
            elif rest[0] == "*":
                regex += "[^/]*"
                rest = rest[1:]
            elif rest[0] == "?":
                regex += "[^/]"
                rest = rest[1:]
            else:
                regex += re.escape(rest[0])
                rest = rest[1:]
        patterns.append(re.compile(regex))
    return patterns


def ignored(relative: str, patterns: list[re.Pattern[str]]) -> bool:
    """Whether the build context leaves out this path (or a folder holding it)."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    return any(p.fullmatch(prefix) for p in patterns for prefix in prefixes)


class TestImage:
    """The image is slim, runs as a non-root user and starts the server."""

    def test_base_image_is_python_3_11_slim(self) -> None:
        assert only("FROM").args == "python:3.11-slim"
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert project["requires-python"] == ">=3.11"

    def test_runs_as_a_non_root_user_created_in_the_image(self) -> None:
        keywords = [i.keyword for i in instructions()]
        user = only("USER").args
        assert user not in {"root", "0"} and not user.startswith(("root:", "0:"))
        created = [i for i in instructions() if i.keyword == "RUN" and "useradd" in i.args]
        assert created and user in created[0].args.split()
        last_run = max(n for n, k in enumerate(keywords) if k == "RUN")
        assert keywords.index("USER") > last_run, "nothing runs as root after USER"
        assert keywords.index("USER") < keywords.index("CMD")

    def test_cmd_is_the_console_script_serving(self) -> None:
        assert only("CMD").exec_form() == ["journey-conversions", "serve"]
        scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
        assert scripts["journey-conversions"] == "journey_conversions.cli:main"

    def test_installs_the_client_package_then_the_service(self) -> None:
        (install,) = [i for i in instructions() if i.keyword == "RUN" and "pip install" in i.args]
        assert install.args.split()[-2:] == ["./clients/python", "."]


class TestSettings:
    """Ports and settings agree with the service's configuration."""

    def test_exposed_ports_are_the_configured_listen_ports(self) -> None:
        defaults = {flag: default for flag, _, default, _ in config_module.SETTINGS}
        env = env_values()
        exposed = {int(p) for p in only("EXPOSE").args.split()}
        assert exposed == {port_of(env["JC_LISTEN"]), port_of(env["JC_METRICS_LISTEN"])}
        assert port_of(env["JC_LISTEN"]) == port_of(defaults["--listen"]) == 50051
        assert port_of(env["JC_METRICS_LISTEN"]) == port_of(defaults["--metrics-listen"]) == 9464
        assert env["JC_LISTEN"] == "0.0.0.0:50051"
        assert env["JC_METRICS_LISTEN"] == "0.0.0.0:9464"

    def test_every_service_variable_set_is_a_known_setting(self) -> None:
        known = {name for _, name, _, _ in config_module.SETTINGS}
        service_variables = {n for n in env_values() if n.startswith("JC_") or n == "DATABASE_URL"}
        assert service_variables <= known
        assert "DATABASE_URL" not in service_variables, "the database is the deployer's to give"
        text = (ROOT / "Dockerfile").read_text()
        assert "DATABASE_URL" in text, "the Dockerfile says containers are expected to get one"

    def test_a_container_checks_api_keys(self) -> None:
        """It listens on every address, so development auth would let anyone be any tenant."""
        env = env_values()
        assert env.get("JC_AUTH", "keys") == "keys"
        assert env.get("JC_INSECURE_DEV_AUTH_ON_NETWORK", "no") == "no"
        assert config_module.from_values([]).auth == "keys"

    def test_grace_period_fits_in_dockers_default_stop_timeout(self) -> None:
        assert float(env_values()["JC_GRACE_SECONDS"]) < 10


class TestBuildContext:
    """What the image copies exists, is not ignored, and is enough to build both packages."""

    def test_dockerignore_leaves_out_environments_vcs_and_caches(self) -> None:
        patterns = ignore_patterns()
        for path in (
            ".venv/bin/python",
            ".git/HEAD",
            "clients/node/node_modules/x/index.js",
            "service/journey_conversions/__pycache__/cli.cpython-311.pyc",
            "service/journey_conversions.egg-info/PKG-INFO",
            ".mypy_cache/x",
            ".pytest_cache/x",
            ".ruff_cache/x",
            ".hypothesis/x",
        ):
            assert ignored(path, patterns), path

    def test_every_copy_source_exists_and_is_in_the_context(self) -> None:
        patterns = ignore_patterns()
        assert copies()
        for source, _ in copies():
            assert (ROOT / source).exists(), source
            assert not ignored(source.rstrip("/"), patterns), source

    async def test_copied_files_build_the_client_and_service_wheels(self, tmp_path: Path) -> None:
        patterns = ignore_patterns()
        context = tmp_path / "src"
        for source, destination in copies():
            target = context / (source if destination in {"./", "."} else destination)
            origin = ROOT / source
            if origin.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target)
                continue
            for path in origin.rglob("*"):
                relative = path.relative_to(ROOT).as_posix()
                if path.is_file() and not ignored(relative, patterns):
                    copied = target / path.relative_to(origin)
                    copied.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, copied)
        (install,) = [i for i in instructions() if i.keyword == "RUN" and "pip install" in i.args]
        packages = install.args.split()[2:]
        wheels = tmp_path / "wheels"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            *packages,
            cwd=context,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(proc.communicate(), 300)
        assert proc.returncode == 0, output.decode()
        built = {w.name.split("-")[0]: w for w in wheels.glob("*.whl")}
        assert set(built) == {"journey_conversions", "journey_conversions_client"}
        with zipfile.ZipFile(built["journey_conversions"]) as wheel:
            names = wheel.namelist()
            assert "journey_conversions/migrations/0001_init.sql" in names
            (entry_points,) = [n for n in names if n.endswith("entry_points.txt")]
            assert "journey-conversions = journey_conversions.cli:main" in (
                wheel.read(entry_points).decode()
            )
        with zipfile.ZipFile(built["journey_conversions_client"]) as wheel:
            assert "journeys/conversions/v1/service_pb2_grpc.py" in wheel.namelist()


async def run_healthcheck(listen: str) -> int:
    """The HEALTHCHECK command as Docker would run it, with this venv's python."""
    argv = only("HEALTHCHECK").exec_form()
    assert argv[0] == "python"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv[1:],
        env={**os.environ, "JC_LISTEN": listen},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(proc.wait(), 60)


class TestHealthcheck:
    """The HEALTHCHECK command passes on a serving server and fails otherwise."""

    def test_healthcheck_is_timed_and_uses_the_exec_form(self) -> None:
        args = only("HEALTHCHECK").args
        for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
            assert option in args
        assert only("HEALTHCHECK").exec_form()[:2] == ["python", "-c"]

    async def test_passes_against_a_serving_server(self, service_target: str) -> None:
        assert await run_healthcheck(service_target) == 0

    async def test_fails_when_the_server_is_not_serving(self, app: App) -> None:
        await app.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        assert await run_healthcheck(f"0.0.0.0:{app.port}") == 1

    async def test_fails_when_nothing_listens(self, unused_tcp_port: int) -> None:
        assert await run_healthcheck(f"0.0.0.0:{unused_tcp_port}") != 0
