"""The one mapping from a failed connection attempt to the line every command prints."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy.exc import DBAPIError

from payhook.errors import ConfigurationError, StorageUnavailableError
from payhook.storage._engine import connect_error, describe_database

URL = "postgresql+asyncpg://shop:pw-123@db.internal:6543/orders"


class InvalidCatalogNameError(Exception):
    """Named like asyncpg's, which the mapping recognises by name (no driver import)."""


def test_describe_masks_the_password_and_names_server_and_database() -> None:
    shown = describe_database(URL)
    assert "pw-123" not in shown
    assert shown == (
        "postgresql+asyncpg://shop:***@db.internal:6543/orders "
        "(server db.internal:6543, database 'orders')"
    )
    assert "5432" in describe_database("postgresql+asyncpg://u@h/db")


@pytest.mark.parametrize(
    ("exc", "kind", "says"),
    [
        (ConnectionRefusedError(111, "Connect call failed"), StorageUnavailableError, "refused"),
        (socket.gaierror(-2, "Name or service not known"), StorageUnavailableError, "unknown host"),
        (TimeoutError(), StorageUnavailableError, "timed out"),
        (InvalidCatalogNameError("x"), ConfigurationError, "database 'orders' does not exist"),
        (
            DBAPIError("connect", None, InvalidCatalogNameError("x")),
            ConfigurationError,
            "database 'orders' does not exist",
        ),
    ],
)
def test_connect_faults_become_one_line(exc: BaseException, kind: type, says: str) -> None:
    error = connect_error(URL, exc)
    assert isinstance(error, kind)
    assert error.message.startswith("cannot connect to the database postgresql+asyncpg://shop:***@")
    assert says in error.message
    assert "\n" not in error.message
    assert "pw-123" not in error.message


def test_other_errors_are_not_connect_faults() -> None:
    assert connect_error(URL, ValueError("boom")) is None
