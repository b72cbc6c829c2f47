"""Fault helpers: make a SQLite database unwritable even for root (chattr +i on ext4)."""

from __future__ import annotations

import contextlib
import shutil
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
