"""The intake transaction: audit row, events (one per key) and their outbox rows, all or nothing.

One algorithm (``_flow.py``, steps in ``_steps.py``) and one driver module per database
(``_sqlite.py`` with its writer thread ``_writer.py``; ``_postgres.py``).
"""

from __future__ import annotations

from payhook.storage.intake._flow import Intake, IntakeRecord, IntakeResult, intake_flow
from payhook.storage.intake._postgres import PostgresIntake
from payhook.storage.intake._sqlite import SqliteIntake

__all__ = [
    "Intake",
    "IntakeRecord",
    "IntakeResult",
    "PostgresIntake",
    "SqliteIntake",
    "intake_flow",
]
