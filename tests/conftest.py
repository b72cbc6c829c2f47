"""Shared fixtures: scrubbed environment, asyncio backend, SQLite and PostgreSQL databases."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests import _db

CI = os.environ.get("CI") == "true"

# CI explores at least as many examples as a developer's run, and prints the blob that
# reproduces a failure.
HYPOTHESIS_EXAMPLES = 200
settings.register_profile(
    "default",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=HYPOTHESIS_EXAMPLES,
)
settings.register_profile(
    "ci",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    max_examples=HYPOTHESIS_EXAMPLES,
    print_blob=True,
)
settings.load_profile("ci" if CI else "default")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (the minute-long fault runs) start first, so that pytest-xdist
    hands them out to its workers at the start rather than leaving one for the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


# -- under CI=true nothing is skipped silently --------------------------------------------


def _skip_reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true a skipped test (``pytest.skip``, ``importorskip``, a ``skipif`` mark) is a
    failure: a missing tool, package or file must not hide a test on CI."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI=true, which allows no skip: {_skip_reason(report.longrepr)}"
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """The same for a module skipped as a whole while it is collected."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = (
            f"skipped under CI=true, which allows no skip: {_skip_reason(report.longrepr)}"
        )


_PG_URL: str | None = None
_PG_CHECKED = False


def _postgres_server() -> str | None:
    global _PG_URL, _PG_CHECKED
    if not _PG_CHECKED:
        _PG_URL = _db.postgres_url()
        _PG_CHECKED = True
    return _PG_URL


def require_postgres() -> str:
    """The PostgreSQL server URL; skips the test without one (fails under CI=true)."""
    url = _postgres_server()
    if url is None:
        if CI:
            pytest.fail("PostgreSQL is required under CI=true and is not reachable")
        pytest.skip(
            "PostgreSQL not reachable at 127.0.0.1:5432 "
            "(set PAYHOOK_TEST_POSTGRES_URL to run the PostgreSQL tests)"
        )
    return url


@pytest.fixture(autouse=True)
def _scrub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No PAYHOOK_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("PAYHOOK_") and key != "PAYHOOK_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated template database, created once per test session."""
    server = require_postgres()
    name = _db.create_template(server)
    yield name
    _db.drop_database(server, name)


@pytest.fixture
def postgres_database_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for one test."""
    server = require_postgres()
    template = request.getfixturevalue("pg_template")
    name = _db.create_from_template(server, template)
    yield _db.with_database(server, name)
    _db.drop_database(server, name)


@pytest.fixture
def empty_postgres_database_url() -> Iterator[str]:
    """A fresh PostgreSQL database without payhook's tables."""
    server = require_postgres()
    name = _db.create_from_template(server, None)
    yield _db.with_database(server, name)
    _db.drop_database(server, name)


@pytest.fixture
def sqlite_database_url(tmp_path: Path) -> str:
    """A fresh, migrated SQLite file."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'payhook.db'}"
    asyncio.run(_db.migrate(url))
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, migrated database: each test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_database_url"))
    return str(request.getfixturevalue("postgres_database_url"))
