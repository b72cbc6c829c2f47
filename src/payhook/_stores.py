"""Persistence the wiring hands to providers: providers never reach a database themselves.

``payhook.storage`` implements these protocols; tests may hand in a dictionary-backed one.
A leaf module (standard library only), so providers and storage both import it and neither
imports the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = ["CertificateStore", "StoredCertificate"]


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
