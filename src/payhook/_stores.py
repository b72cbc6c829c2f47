"""Persistence the wiring hands in: protocols ``payhook.storage`` implements, and their records.

Providers never reach a database and the notify endpoint never imports storage: the
``PayHook`` facade hands each the store it needs (tests may hand in a dictionary-backed one).
This module imports only the pure event model, so providers, storage and the web edge all
import it and none of them imports another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from payhook._types import NotificationVerdict
from payhook.events import EventDraft

__all__ = [
    "CallbackStore",
    "CertificateStore",
    "IntakeRecord",
    "IntakeResult",
    "StoredCertificate",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCertificate:
    """One platform certificate of one channel, as stored.

    ``serial_no`` is upper-case hex without leading zeros; ``pem`` the certificate in PEM.
    """

    serial_no: str
    pem: str
    effective_time: datetime | None
    expire_time: datetime | None
    fetched_at: datetime


class CertificateStore(Protocol):
    """Keeps downloaded platform certificates across restarts (WeChat Pay v3 certificate mode)."""

    async def load_certificates(self, channel: str) -> Sequence[StoredCertificate]:
        """Every stored certificate of ``channel``.

        Raises:
            StorageUnavailableError: the store cannot be reached.
        """
        ...

    async def save_certificates(
        self, channel: str, certificates: Sequence[StoredCertificate]
    ) -> None:
        """Insert or replace ``certificates`` of ``channel`` (keyed by serial).

        Raises:
            StorageError: the certificates could not be kept.
        """
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeRecord:
    """Everything the intake transaction writes for one callback."""

    channel: str
    received_at: datetime
    headers: dict[str, str]
    body: bytes
    notification_id: str | None
    drafts: tuple[EventDraft, ...]
    verdict: str = NotificationVerdict.ACCEPTED  # ACCEPTED or REFUSED
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IntakeResult:
    """What the intake transaction did."""

    event_ids: tuple[str, ...]
    new_event_ids: tuple[str, ...]
    new_event_types: tuple[str, ...]
    deliveries: int

    @property
    def is_duplicate(self) -> bool:
        """True when every event already existed (the callback was seen before)."""
        return bool(self.event_ids) and not self.new_event_ids


class CallbackStore(Protocol):
    """Where the notify endpoint commits verified callbacks and audits refused ones."""

    async def record(self, record: IntakeRecord) -> IntakeResult:
        """Commit the intake transaction for one callback; returns once the commit is durable.

        Raises:
            StorageUnavailableError: the database cannot take the write right now.
        """
        ...

    def audit_refused(self, record: IntakeRecord) -> bool:
        """Queue the audit record of a refused callback; False when it was dropped."""
        ...
