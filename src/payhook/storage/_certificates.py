"""WeChat Pay platform certificates kept across restarts (table ``payhook_platform_certificates``).

The certificate downloader saves what it fetched, and loads it again at start, so a restart
does not depend on WeChat Pay's API being reachable. :class:`PlatformCertificateTable` is the
:class:`payhook._stores.CertificateStore` the wiring hands to the downloader.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from payhook._stores import StoredCertificate
from payhook.errors import StorageError, StorageUnavailableError
from payhook.storage._tables import platform_certificates

__all__ = [
    "PlatformCertificateTable",
    "StoredCertificate",
    "load_platform_certificates",
    "save_platform_certificates",
]


def _storage_error(exc: Exception) -> StorageError:
    if isinstance(exc, (DBAPIError, OSError)):
        return StorageUnavailableError("the database cannot take the platform-certificate query")
    return StorageError("platform-certificate storage failed")


async def load_platform_certificates(engine: AsyncEngine, channel: str) -> list[StoredCertificate]:
    """Every stored platform certificate of ``channel``, by serial.

    Raises:
        StorageUnavailableError: the database cannot be reached.
    """
    table = platform_certificates
    query = select(table).where(table.c.channel == channel).order_by(table.c.serial_no)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
    except (SQLAlchemyError, OSError) as exc:
        raise _storage_error(exc) from exc
    return [
        StoredCertificate(
            serial_no=row["serial_no"],
            pem=row["pem"],
            effective_time=row["effective_time"],
            expire_time=row["expire_time"],
            fetched_at=row["fetched_at"],
        )
        for row in rows
    ]


async def save_platform_certificates(
    engine: AsyncEngine, channel: str, certificates: Sequence[StoredCertificate]
) -> None:
    """Insert or update ``certificates`` of ``channel`` (keyed by serial), in one transaction.

    Raises:
        StorageUnavailableError: the database cannot be reached.
    """
    if not certificates:
        return
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    try:
        async with engine.begin() as conn:
            for cert in certificates:
                stmt = insert(platform_certificates).values(
                    channel=channel,
                    serial_no=cert.serial_no,
                    pem=cert.pem,
                    effective_time=cert.effective_time,
                    expire_time=cert.expire_time,
                    fetched_at=cert.fetched_at,
                )
                await conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["channel", "serial_no"],
                        set_={
                            "pem": stmt.excluded.pem,
                            "effective_time": stmt.excluded.effective_time,
                            "expire_time": stmt.excluded.expire_time,
                            "fetched_at": stmt.excluded.fetched_at,
                        },
                    )
                )
    except (SQLAlchemyError, OSError) as exc:
        raise _storage_error(exc) from exc


class PlatformCertificateTable:
    """``payhook_platform_certificates`` as a :class:`payhook._stores.CertificateStore`."""

    __slots__ = ("_engine",)

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def __repr__(self) -> str:
        return f"PlatformCertificateTable({self._engine.dialect.name})"

    async def load_certificates(self, channel: str) -> list[StoredCertificate]:
        """Every stored platform certificate of ``channel``, by serial."""
        return await load_platform_certificates(self._engine, channel)

    async def save_certificates(
        self, channel: str, certificates: Sequence[StoredCertificate]
    ) -> None:
        """Insert or update ``certificates`` of ``channel`` (keyed by serial)."""
        await save_platform_certificates(self._engine, channel, certificates)
