"""Fault helpers: SQLite databases that cannot be written.

``locked_sqlite`` holds an exclusive lock from another connection: every writer gets
SQLITE_BUSY after its busy timeout, exactly as when another process locks the file.
``unwritable_sqlite`` makes the files immutable (chattr +i, works for root on ext4); only use it
before payhook opens the file: SQLite maps the WAL index into memory, and a mapped file turned
immutable under a live connection kills the process with SIGBUS.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def unwritable_sqlite(db: Path) -> Iterator[None]:
    """Make ``db``, its WAL/SHM files and its folder immutable for the duration."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not available to make the SQLite file unwritable")
    paths = [p for p in db.parent.iterdir() if p.name.startswith(db.name)] + [db.parent]
    done: list[Path] = []
    try:
        for path in paths:
            proc = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
            if proc.returncode != 0:
                pytest.skip(f"chattr +i failed here: {proc.stderr.decode().strip()}")
            done.append(path)
        yield
    finally:
        for path in reversed(done):
            subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)


@contextlib.contextmanager
def locked_sqlite(db: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``db`` for the duration."""
    conn = sqlite3.connect(str(db), isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()
