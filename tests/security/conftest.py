"""A real ``payhook serve`` shared by the security tests of one module, on a fresh SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faults._payhook import PayhookServe, write_config


@dataclass(frozen=True, slots=True, kw_only=True)
class Served:
    """The running server and where its files are."""

    serve: PayhookServe
    db: Path
    config: Path
    log: Path

    @property
    def url(self) -> str:
        return self.serve.url

    def stored_events(self) -> int:
        """How many events the database holds."""
        with sqlite3.connect(self.db) as conn:
            return int(conn.execute("SELECT count(*) FROM payhook_events").fetchone()[0])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``payhook serve`` with the three sandbox channels and the admin API on."""
    folder = tmp_path_factory.mktemp("security")
    db = folder / "payhook.db"
    config = write_config(
        folder,
        database_url=f"sqlite+aiosqlite:///{db}",
        subscriber_url="http://127.0.0.1:9/unused",
        max_body_bytes=8192,
    )
    log = folder / "serve.log"
    with PayhookServe(config, log=log) as serve:
        yield Served(serve=serve, db=db, config=config, log=log)
