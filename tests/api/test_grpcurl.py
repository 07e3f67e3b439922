"""The service as people reach it: the real grpcurl binary against the real server, through
server reflection, JSON requests, metadata headers and the health service."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.keys import create_key

GRPCURL = Path(sys.executable).parent / "grpcurl"
SERVICE = "journeys.conversions.v1.JourneyConversionsService"


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def messages(self) -> list[Any]:
        """The JSON objects grpcurl printed, one per response of a stream."""
        decoder, found, at = json.JSONDecoder(), [], 0
        while self.stdout[at:].strip():
            at += len(self.stdout[at:]) - len(self.stdout[at:].lstrip())
            value, at = decoder.raw_decode(self.stdout, at)
            found.append(value)
        return found


Grpcurl = Callable[..., Awaitable[Run]]


@pytest.fixture
def grpcurl(service_target: str) -> Grpcurl:
    """Runs grpcurl against the server without blocking the event loop the server shares."""
    if not GRPCURL.exists():
        pytest.fail(f"grpcurl is not installed next to {sys.executable} (pip install '.[test]')")

    async def run(
        *command: str,
        flags: tuple[str, ...] = (),
        data: dict[str, Any] | None = None,
        stdin: str | None = None,  # `-d @`: the request messages, one JSON object after another
    ) -> Run:
        argv = [str(GRPCURL), "-plaintext", "-max-time", "30", *flags]
        if data is not None:
            argv += ["-d", json.dumps(data)]
        elif stdin is not None:
            argv += ["-d", "@"]
        argv += [service_target, *command]
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            sent = None if stdin is None else stdin.encode()
            out, err = await asyncio.wait_for(proc.communicate(sent), timeout=60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        assert proc.returncode is not None
        return Run(proc.returncode, out.decode(), err.decode())

    return run


# grpcurl 1.8 prints the proto field names; it reads both those and the JSON names.
GOAL = {"event_type": "GOAL_EVENT_TYPE_EMAIL_CLICKED", "message_ids": ["email-1"]}
JOURNEY = {
    "request_id": "r1",
    "journey": {
        "journey_id": "welcome",
        "display_name": "Welcome series",
        "purpose": "JOURNEY_PURPOSE_NURTURE",
        "goal": GOAL,
        "versions": [
            {"version": 1, "messages": [{"message_id": "email-1", "channel": "CHANNEL_EMAIL"}]}
        ],
    },
}


class TestReflection:
    """grpcurl discovers the services and their methods by reflection."""

    async def test_list_names_the_service_health_and_reflection(self, grpcurl: Grpcurl) -> None:
        result = await grpcurl("list")
        assert result.returncode == 0, result.stderr
        services = result.stdout.split()
        assert SERVICE in services
        assert "grpc.health.v1.Health" in services

    async def test_describe_shows_every_rpc_of_the_service(self, grpcurl: Grpcurl) -> None:
        result = await grpcurl("describe", SERVICE)
        assert result.returncode == 0, result.stderr
        for method in (
            "DefineJourney",
            "GetJourney",
            "BatchRecordTouchpoints",
            "StreamIngest",
            "StreamConversionEvents",
            "GetJourneyReport",
        ):
            assert f"rpc {method} (" in result.stdout
        assert "returns ( stream .journeys.conversions.v1.StreamConversionEventsResponse )" in (
            result.stdout
        )
        assert (
            "rpc StreamIngest ( stream .journeys.conversions.v1.StreamIngestRequest )"
            " returns ( stream .journeys.conversions.v1.StreamIngestResponse )"
        ) in result.stdout


class TestJsonCalls:
    """JSON in, JSON out: a journey defined by grpcurl reads back through grpcurl."""

    async def test_define_then_get_a_journey(self, grpcurl: Grpcurl) -> None:
        defined = await grpcurl(f"{SERVICE}/DefineJourney", data=JOURNEY)
        assert defined.returncode == 0, defined.stderr
        assert defined.json()["journey"]["journey_id"] == "welcome"

        got = await grpcurl(f"{SERVICE}/GetJourney", data={"journey_id": "welcome"})
        assert got.returncode == 0, got.stderr
        journey = got.json()["journey"]
        assert journey["display_name"] == "Welcome series"
        assert journey["purpose"] == "JOURNEY_PURPOSE_NURTURE"
        assert journey["goal"] == GOAL
        assert journey["versions"][0]["messages"][0]["channel"] == "CHANNEL_EMAIL"
        assert journey["attribution_window"] == "2592000s"

    async def test_error_shows_the_status_code_name_and_reason(self, grpcurl: Grpcurl) -> None:
        result = await grpcurl(f"{SERVICE}/GetJourney", data={"journey_id": "nowhere"})
        assert result.returncode != 0
        assert "Code: NotFound" in result.stderr
        assert "nowhere" in result.stderr

    async def test_invalid_argument_lists_the_field_violations(self, grpcurl: Grpcurl) -> None:
        result = await grpcurl(
            f"{SERVICE}/RecordTouchpoint",
            flags=("-format-error",),
            data={"touchpoint": {"event_id": "t1"}},
        )
        assert result.returncode != 0
        status = json.loads(result.stderr)  # -format-error prints the status as JSON
        assert status["code"] == 3  # INVALID_ARGUMENT
        fields = {
            violation["field"]
            for detail in status["details"]
            if detail["@type"].endswith("google.rpc.BadRequest")
            for violation in detail["field_violations"]
        }
        assert "touchpoint.occur_time" in fields

    async def test_stream_ingest_takes_one_json_message_after_another(
        self, grpcurl: Grpcurl
    ) -> None:
        """As the README shows it: `-d @` and the messages on standard input."""
        defined = await grpcurl(f"{SERVICE}/DefineJourney", data=JOURNEY)
        assert defined.returncode == 0, defined.stderr
        at = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        entry = {"enrollment_id": "e1", "contact_id": "c1", "journey_id": "welcome", "version": 1}
        click = {
            "event_id": "t1",
            "contact_id": "c1",
            "journey_id": "welcome",
            "message_id": "email-1",
            "channel": "CHANNEL_EMAIL",
            "action": "TOUCHPOINT_ACTION_CLICKED",
            "occur_time": at,
        }
        messages = [
            {"sequence": 1, "enrollments": {"enrollments": [{**entry, "enter_time": at}]}},
            {"sequence": 2, "touchpoints": {"touchpoints": [click, click]}},
            {"sequence": 3},
        ]
        result = await grpcurl(
            f"{SERVICE}/StreamIngest", stdin="\n".join(json.dumps(m) for m in messages)
        )
        assert result.returncode == 0, result.stderr
        first, second, third = result.messages()
        assert first == {
            "sequence": "1",
            "results": [{"event_id": "e1", "status": "ITEM_STATUS_ACCEPTED"}],
        }
        assert second["sequence"] == "2"
        assert [r["status"] for r in second["results"]] == [
            "ITEM_STATUS_ACCEPTED",
            "ITEM_STATUS_DUPLICATE",
        ]
        assert third["sequence"] == "3"
        assert third["error"]["code"] == "INVALID_ARGUMENT"
        assert [v["field"] for v in third["error"]["field_violations"]] == ["batch"]

    async def test_tenant_header_selects_the_tenant(self, grpcurl: Grpcurl) -> None:
        header = ("-H", "x-tenant-id: t2")
        defined = await grpcurl(f"{SERVICE}/DefineJourney", flags=header, data=JOURNEY)
        assert defined.returncode == 0, defined.stderr
        in_t2 = await grpcurl(f"{SERVICE}/GetJourney", flags=header, data={"journey_id": "welcome"})
        assert in_t2.returncode == 0, in_t2.stderr
        assert in_t2.json()["journey"]["journey_id"] == "welcome"
        in_default = await grpcurl(f"{SERVICE}/GetJourney", data={"journey_id": "welcome"})
        assert "Code: NotFound" in in_default.stderr


class TestHealth:
    """The standard health service answers SERVING for the server and for the service."""

    @pytest.mark.parametrize("service", ["", SERVICE])
    async def test_health_check_is_serving(self, grpcurl: Grpcurl, service: str) -> None:
        result = await grpcurl("grpc.health.v1.Health/Check", data={"service": service})
        assert result.returncode == 0, result.stderr
        assert result.json() == {"status": "SERVING"}


class TestWithAKey:
    """Against a server checking keys (reflection off), as the README shows: the key in a
    header, the contract from the proto files."""

    ROOT = Path(__file__).resolve().parents[2]

    async def run(self, target: str, *flags: str) -> Run:
        argv = [str(GRPCURL), "-plaintext", "-max-time", "30", "-import-path"]
        argv += [str(self.ROOT / "proto"), "-proto", "journeys/conversions/v1/service.proto"]
        argv += [*flags, "-d", "{}", target, f"{SERVICE}/ListJourneys"]
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert proc.returncode is not None
        return Run(proc.returncode, out.decode(), err.decode())

    async def test_a_key_in_a_header_with_the_protos(
        self, keyed_app: Any, database_url: str
    ) -> None:
        target = f"127.0.0.1:{keyed_app.port}"
        _, token = await create_key(database_url, "acme")
        allowed = await self.run(target, "-H", f"authorization: Bearer {token}")
        assert allowed.returncode == 0, allowed.stderr
        assert allowed.json() == {}
        refused = await self.run(target)
        assert refused.returncode != 0
        assert "Unauthenticated" in refused.stderr
