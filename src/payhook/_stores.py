"""Persistence the wiring hands in: protocols ``payhook.storage`` implements, and their records.

Providers never reach a database and the notify endpoint never imports storage: the
``PayHook`` facade hands each the store it needs (tests may hand in a dictionary-backed one).
This module imports only the pure event model, so providers, storage and the web edge all
import it and none of them imports another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from payhook.events import EventDraft

__all__ = [
    "EXCERPT_BYTES",
    "CallbackStore",
    "CertificateStore",
    "IntakeRecord",
    "IntakeResult",
    "RefusedCallback",
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
    """Everything the intake transaction writes for one verified callback.

    Refused callbacks never reach the intake transaction: they are audited as a bounded
    :class:`RefusedCallback` instead.
    """

    channel: str
    received_at: datetime
    headers: dict[str, str]
    body: bytes
    notification_id: str | None
    drafts: tuple[EventDraft, ...]


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


# Contract §14: at most 2 KiB of the headers and body (UTF-8 bytes of the excerpt).
EXCERPT_BYTES = 2048
_MASK = "***"
# Headers that carry credentials: their values never reach the audit table.
_CREDENTIAL_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"}
)
_CREDENTIAL_WORDS = ("secret", "token", "password", "passwd", "api-key", "apikey", "session")
_ELLIPSIS = "\u2026"
# C0 controls (but tab, line feed, carriage return), DEL and C1 controls are shown as \xNN:
# the excerpt is plain text that every database takes (PostgreSQL refuses NUL in text).
_ESCAPES = {
    code: f"\\x{code:02x}"
    for code in (*range(0x20), *range(0x7F, 0xA0))
    if code not in (0x09, 0x0A, 0x0D)
}


def _is_secret_header(name: str) -> bool:
    return name in _CREDENTIAL_HEADERS or any(word in name for word in _CREDENTIAL_WORDS)


def _printable(text: str) -> str:
    return text.translate(_ESCAPES)


def _cut(data: bytes, room: int, *, cut: bool = False) -> str:
    """``data`` (valid UTF-8) as text of at most ``room`` UTF-8 bytes, ending with ``…`` when
    shortened here or, ``cut``, before."""
    if len(data) <= room and not cut:
        return data.decode("utf-8")
    keep = room - len(_ELLIPSIS.encode("utf-8"))
    if keep < 0:
        return ""
    # "ignore" drops a character cut in the middle, never anything else (data is valid).
    return data[:keep].decode("utf-8", errors="ignore") + _ELLIPSIS


def audit_excerpt(headers: Mapping[str, str], body: bytes) -> str:
    """At most :data:`EXCERPT_BYTES` (UTF-8) of a refused callback: headers, a blank line, body.

    Headers come first, one ``name: value`` line each, in the order received; the values of
    credential headers (``Authorization``, ``Cookie``, any name with ``token``, ``secret``…)
    are masked. The body is decoded as UTF-8 with undecodable bytes shown as ``\\xNN``, and
    control characters escaped the same way, so any bytes make valid text. When both do not
    fit, the headers keep at least half the room; a shortened part ends with ``…``.
    """
    lines = (
        f"{_printable(name)}: {_MASK if _is_secret_header(name.lower()) else _printable(value)}"
        for name, value in headers.items()
    )
    head = "\n".join(lines).encode("utf-8")
    # Each body byte becomes at least one byte of text, so the first EXCERPT_BYTES suffice.
    tail = _printable(body[:EXCERPT_BYTES].decode("utf-8", errors="backslashreplace"))
    tail_bytes = tail.encode("utf-8")
    body_cut = len(body) > EXCERPT_BYTES
    room = EXCERPT_BYTES - 2  # the blank line between headers and body
    head_room = min(len(head), max(room - len(tail_bytes), room // 2))
    head_text = _cut(head, head_room)
    body_room = room - len(head_text.encode("utf-8"))
    return f"{head_text}\n\n{_cut(tail_bytes, body_room, cut=body_cut)}"


@dataclass(frozen=True, slots=True, kw_only=True)
class RefusedCallback:
    """The bounded audit record of one refused callback (contract §14).

    ``size`` is the number of body bytes read before the callback was refused: the whole
    body, except for a body refused as too large, which is read only up to the first chunk
    past ``max_body_bytes`` (0 when its ``Content-Length`` already said too large); ``digest``
    is the SHA-256 (hex) of those same bytes. ``excerpt`` is :func:`audit_excerpt`'s text,
    at most :data:`EXCERPT_BYTES` long.
    """

    channel: str
    received_at: datetime
    reason: str
    remote_addr: str | None
    size: int
    digest: str
    excerpt: str

    @classmethod
    def build(
        cls,
        *,
        channel: str,
        received_at: datetime,
        reason: str,
        remote_addr: str | None,
        headers: Mapping[str, str],
        body: bytes | Iterable[bytes],
    ) -> RefusedCallback:
        """The record of a callback refused for ``reason``; ``body`` is what was read of it
        (bytes, or the chunks read)."""
        data = body if isinstance(body, bytes) else b"".join(body)
        return cls(
            channel=channel,
            received_at=received_at,
            reason=reason[:64],
            remote_addr=None if remote_addr is None else remote_addr[:64],
            size=len(data),
            digest=hashlib.sha256(data).hexdigest(),
            excerpt=audit_excerpt(headers, data),
        )


class CallbackStore(Protocol):
    """Where the notify endpoint commits verified callbacks and audits refused ones."""

    async def record(self, record: IntakeRecord) -> IntakeResult:
        """Commit the intake transaction for one callback; returns once the commit is durable.

        Raises:
            StorageUnavailableError: the database cannot take the write right now.
        """
        ...

    def audit_refused(self, channel: str, build: Callable[[], RefusedCallback]) -> None:
        """Queue the audit record of a callback refused on ``channel``, to be written at lower
        priority than any callback being recorded; returns at once.

        ``build`` makes the record; a store under pressure does not call it (a flood spends
        no hashing on records it drops): it counts the drop instead. Never blocks, never
        raises, never delays a :meth:`record`.
        """
        ...
