"""The Go client (clients/go) drives the live server: its go test suite runs here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

GO_DIR = Path(__file__).resolve().parents[2] / "clients" / "go"
GO_TESTS = (
    "TestJourneyFlowIsCountedInTheReport",
    "TestUnknownJourneyIsNotFoundWithReason",
    "TestInvalidTouchpointIsInvalidArgumentWithFieldViolations",
)


class TestGoLiveTest:
    """The Go live test defines, enters, records and reports, and checks error details."""

    async def test_go_live_test_passes_against_the_server(
        self,
        require_tools: Callable[..., None],
        run_command: Callable[..., Awaitable[tuple[int, str]]],
    ) -> None:
        # offline-go builds against Debian's Go sources (clients/go/ensure-toolchain).
        require_tools("go", "/usr/share/gocode/src/google.golang.org/grpc")
        code, out = await run_command(
            str(GO_DIR / "offline-go"), "test", "-count=1", "-v", "./livetest", cwd=GO_DIR
        )
        assert code == 0, f"go test failed:\n{out}"
        for name in GO_TESTS:
            assert f"--- PASS: {name}" in out, out
        assert "--- SKIP" not in out, out
