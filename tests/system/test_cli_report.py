"""`journey-conversions report` against a real server: the CLI runs in-process in a worker thread
(its own event loop) while the server keeps serving on the test's loop; its output is read from
capsys. Argument errors exit 2 before any call."""

# The en dash is the interval separator the report prints.
# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
import structlog
from journeys.conversions.v1 import journey_pb2
from journeys.conversions.v1 import service_pb2 as pb

from journey_conversions import cli, cli_report
from journey_conversions.keys import Scope
from journey_conversions.server import App
from tests.builders import (
    ago,
    define_journey,
    enter,
    goal,
    goal_event,
    message,
    touchpoint,
)
from tests.keys import bearer, create_key

if TYPE_CHECKING:
    from tests.builders import Stub


@pytest.fixture(autouse=True)
def quiet_server() -> Iterator[None]:
    """The in-process server logs through structlog to stdout, which capsys shares with the
    command: drop its lines while the test runs."""
    configured, saved = structlog.is_configured(), structlog.get_config()
    structlog.configure(logger_factory=structlog.ReturnLoggerFactory())
    yield
    if configured:
        structlog.configure(**saved)
    else:
        structlog.reset_defaults()


async def report(*args: str) -> int:
    """Runs `journey-conversions report ARGS` in a worker thread and returns its exit status."""
    return await asyncio.to_thread(cli.main, ["report", *args])


async def enrol(stub: Stub, contact: str, version: int, *, converts: bool) -> None:
    """The contact enters 3 days ago, gets email-1 2 days ago, and if `converts` submits the
    demo form (worth 12.50 EUR) 1 day ago."""
    await stub.EnterJourney(enter(f"e-{contact}", contact, "welcome", ago(days=3), version))
    await stub.RecordTouchpoint(
        pb.RecordTouchpointRequest(
            touchpoint=touchpoint(
                f"t-{contact}", contact, "welcome", "email-1", ago(days=2), version=version
            )
        )
    )
    if converts:
        value = journey_pb2.Money(currency_code="EUR", amount_micros=12_500_000)
        await stub.RecordGoalEvent(
            pb.RecordGoalEventRequest(
                goal_event=goal_event(
                    f"g-{contact}",
                    contact,
                    "FORM_SUBMITTED",
                    ago(days=1),
                    form_id="demo",
                    value=value,
                )
            )
        )


@pytest.fixture
async def welcome(stub: Stub, service_target: str) -> str:
    """Versions 1 and 2 of "welcome" (goal: form "demo"); version 1: 1 of 4 converts, version 2:
    2 of 2 convert. Returns the server's target."""
    for version in (1, 2):
        await stub.DefineJourney(
            define_journey(
                "welcome", [message("email-1")], goal("FORM_SUBMITTED", form_ids=["demo"]), version
            )
        )
    for i in range(4):
        await enrol(stub, f"a{i}", 1, converts=i == 0)
    for i in range(2):
        await enrol(stub, f"b{i}", 2, converts=True)
    return service_target


class TestJson:
    """--json prints the report as protobuf JSON, for scripts."""

    async def test_parses_with_the_expected_figures(
        self, welcome: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert await report("welcome", "--json", "--target", welcome) == 0
        data = json.loads(capsys.readouterr().out)
        # int64 fields are strings in protobuf JSON.
        assert (data["journeyId"], data["entered"], data["goalConversions"]) == (
            "welcome",
            "6",
            "3",
        )
        assert data["baselineVersion"] == 1
        assert [(v["version"], v["entered"], v["goalConversions"]) for v in data["versions"]] == [
            (1, "4", "1"),
            (2, "2", "2"),
        ]
        assert data["versions"][1]["differenceFromBaseline"]["difference"] == pytest.approx(0.75)
        assert data["value"] == [{"currencyCode": "EUR", "amountMicros": "37500000"}]

    async def test_one_version(self, welcome: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert await report("welcome", "--json", "--target", welcome, "--version", "2") == 0
        data = json.loads(capsys.readouterr().out)
        assert data["version"] == 2
        assert [v["version"] for v in data["versions"]] == [2]


class TestText:
    """Without --json the report prints as tables with headings."""

    async def test_summary_and_versions(
        self, welcome: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert await report("welcome", "--target", welcome) == 0
        out = capsys.readouterr().out
        headings = [block.splitlines()[0] for block in out.split("\n\n")]
        assert headings[:3] == [
            "Journey welcome",
            "Summary",
            "Versions (95% intervals; time to conversion from entry)",
        ]
        assert re.search(r"^  Entered +6$", out, re.MULTILINE)
        assert re.search(r"^  Goal conversions +3  \(50\.0% of entered", out, re.MULTILINE)
        assert re.search(r"^  Value +37\.50 EUR$", out, re.MULTILINE)
        assert re.search(r"^  1 +4 +4 +1 +25\.0% \[4\.6–69\.9\] .* baseline +2d +2d", out, re.M)
        assert re.search(r"^  2\* +2 +2 +2 +100\.0% \[34\.2–100\.0\] .* \+75\.0 pts \[", out, re.M)
        assert "  * version 2: " in out
        assert "nan" not in out.lower()


class TestRanges:
    """--since and --until take ISO dates and times, or spans before now."""

    @pytest.mark.parametrize(
        "args",
        [
            ("--since", "7d"),
            ("--since", "2026-01-01"),
            ("--since", "2026-01-01T00:00:00Z", "--until", "24h"),
            ("--since", "2026-01-01T09:30", "--tz", "Europe/Paris"),
        ],
    )
    async def test_accepted(
        self, welcome: str, capsys: pytest.CaptureFixture[str], args: tuple[str, ...]
    ) -> None:
        assert await report("welcome", "--json", "--target", welcome, *args) == 0
        assert json.loads(capsys.readouterr().out)["journeyId"] == "welcome"

    async def test_a_range_before_the_conversions_has_none(
        self, welcome: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert await report("welcome", "--json", "--target", welcome, "--until", "36h") == 0
        data = json.loads(capsys.readouterr().out)
        assert (data["entered"], data.get("goalConversions", "0")) == ("6", "0")


class TestErrors:
    """A failed call prints one error line to stderr and exits 1."""

    async def test_unknown_journey(self, welcome: str, capsys: pytest.CaptureFixture[str]) -> None:
        assert await report("nope", "--target", welcome) == 1
        captured = capsys.readouterr()
        assert captured.err.startswith("error: NOT_FOUND: ")
        assert captured.out == ""

    async def test_target_and_tenant_from_the_environment(
        self, welcome: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("JC_TARGET", welcome)
        monkeypatch.setenv("JC_TENANT", "someone-else")
        assert await report("welcome") == 1  # the journey is the default tenant's
        assert capsys.readouterr().err.startswith("error: NOT_FOUND: ")
        assert await report("welcome", "--tenant", "default", "--json") == 0
        assert json.loads(capsys.readouterr().out)["entered"] == "6"

    async def test_an_api_key_names_the_tenant(
        self,
        keyed_stub: Stub,
        keyed_app: App,
        database_url: str,
        capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        _, admin = await create_key(database_url, "acme")
        _, reader = await create_key(database_url, "acme", Scope.READ)
        await keyed_stub.DefineJourney(
            define_journey("welcome", [message("email-1")], goal("ORDER_PLACED")),
            metadata=bearer(admin),
        )
        target = f"127.0.0.1:{keyed_app.port}"
        assert await report("welcome", "--target", target, "--json") == 1
        assert capsys.readouterr().err.startswith("error: UNAUTHENTICATED: ")
        monkeypatch.setenv("JC_API_KEY", reader)
        assert await report("welcome", "--target", target, "--json") == 0
        assert json.loads(capsys.readouterr().out)["journeyId"] == "welcome"


class TestArguments:
    """Bad arguments exit 2 with argparse's message, before any call."""

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (("--since", "yesterday"), "argument --since: not a time: 'yesterday'"),
            (("--until", "2026-13-01"), "argument --until: not a time"),
            (("--version", "-1"), "argument --version: must be between 0 and"),
            (("--baseline", "two"), "argument --baseline: not a whole number"),
            (("--tz", "Mars/Olympus"), "argument --tz: unknown time zone 'Mars/Olympus'"),
            (("--timeout", "0"), "argument --timeout: must be more than 0 seconds"),
            (("--since", "2026-02-01", "--until", "2026-01-01"), "--until: must be after --since"),
            (("--since", "99999999w"), "argument --since: '99999999w' is out of range"),
        ],
    )
    def test_exit_2(
        self, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
    ) -> None:
        # A closed port: nothing may be called.
        with pytest.raises(SystemExit) as exited:
            cli.main(["report", "welcome", "--target", "127.0.0.1:1", *args])
        assert exited.value.code == 2
        assert message in capsys.readouterr().err


class TestInterrupt:
    """Ctrl-C exits 130 without a traceback or any output."""

    def test_exit_130(
        self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        async def interrupted(*args: object) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(cli_report, "fetch", interrupted)
        assert cli.main(["report", "welcome", "--target", "127.0.0.1:1"]) == 130
        assert capsys.readouterr() == ("", "")
