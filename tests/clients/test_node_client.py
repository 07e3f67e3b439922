"""The TypeScript client (clients/node) drives the live server: its node:test suite runs here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parents[2] / "clients" / "node"


class TestNodeLiveTest:
    """The TypeScript live test defines, enters, records and reports, and checks error details."""

    async def test_node_live_test_passes_against_the_server(
        self,
        require_tools: Callable[..., None],
        run_command: Callable[..., Awaitable[tuple[int, str]]],
    ) -> None:
        require_tools("node", "npm")
        if not (NODE_DIR / "node_modules" / ".bin" / "tsc").exists():
            code, out = await run_command("npm", "ci", "--no-audit", "--no-fund", cwd=NODE_DIR)
            assert code == 0, f"npm ci failed:\n{out}"
        code, out = await run_command("npm", "test", cwd=NODE_DIR)
        assert code == 0, f"npm test failed:\n{out}"
        # All three tests ran: none was skipped for want of JC_TARGET.
        assert "# pass 3" in out, out
        assert "# fail 0" in out, out
        assert "# skipped 0" in out, out
