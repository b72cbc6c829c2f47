"""payhook's tables, all prefixed ``payhook_`` so payhook can share a host app's database.

- ``payhook_notifications``: every accepted or duplicate callback: channel, headers, body.
- ``payhook_refused_callbacks``: a bounded audit record of every refused callback.
- ``payhook_events``: canonical events, one per ``event_key`` (identity from provider facts).
- ``payhook_subscriptions``: where events go (HTTP endpoints and in-process handlers).
- ``payhook_deliveries``: the transactional outbox, one row per (event, subscription) send.
- ``payhook_delivery_attempts``: every attempt of every delivery.
- ``payhook_platform_certificates``: WeChat Pay platform certificates fetched at run time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "UTCDateTime",
    "attempts",
    "deliveries",
    "events",
    "metadata",
    "notifications",
    "platform_certificates",
    "refused_callbacks",
    "sqlite_timestamp",
    "subscriptions",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend.

    PostgreSQL stores ``timestamptz``. SQLite has no time type: values are stored as naive
    UTC text in SQLAlchemy's fixed-width format, so they compare correctly as strings.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def sqlite_timestamp(value: datetime) -> str:
    """The text SQLite columns hold for ``value`` (what :class:`UTCDateTime` binds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


# All datetimes are stored timezone-aware in UTC.
_TS = UTCDateTime()
# SQLite has no autoincrementing BIGINT; INTEGER PRIMARY KEY is its rowid.
_BIGID = BigInteger().with_variant(Integer(), "sqlite")

notifications = Table(
    "payhook_notifications",
    metadata,
    Column("id", _BIGID, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("received_at", _TS, nullable=False),
    Column("headers", Text, nullable=False),  # JSON object, lower-case names
    Column("body", LargeBinary, nullable=False),
    # accepted | duplicate (refused: rows written before migration 0004 only)
    Column("verdict", String(32), nullable=False),
    Column("reason", String(64), nullable=True),
    Column("notification_id", String(128), nullable=True),
    Column("event_ids", Text, nullable=True),  # JSON list
    Index("ix_payhook_notifications_received_at", "received_at"),
    # Migration 0005: retention finds the refused rows stored here before 0004 without
    # reading every accepted callback kept for the events window.
    Index(
        "ix_payhook_notifications_refused",
        "received_at",
        postgresql_where=text("verdict = 'refused'"),
        sqlite_where=text("verdict = 'refused'"),
    ),
)

# Bounded on purpose (migration 0004): a flood of refused callbacks must not grow the database
# by their full size. ``excerpt`` holds at most 2 KiB of headers and body; ``digest`` is the
# SHA-256 (hex) of the whole body, so a refused copy can be matched to a provider's log.
refused_callbacks = Table(
    "payhook_refused_callbacks",
    metadata,
    Column("id", _BIGID, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),
    Column("received_at", _TS, nullable=False),
    Column("reason", String(64), nullable=False),
    Column("remote_addr", String(64), nullable=True),
    Column("size", Integer, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("excerpt", Text, nullable=False),
    Index("ix_payhook_refused_callbacks_received_at", "received_at"),
)

events = Table(
    "payhook_events",
    metadata,
    Column("id", String(32), primary_key=True),  # evt_<ulid>: sorts by time
    Column("event_key", String(512), nullable=False, unique=True),
    Column("type", String(64), nullable=False),
    Column("channel", String(64), nullable=False),
    Column("provider", String(32), nullable=False),
    Column("merchant_id", String(64), nullable=False),
    Column("order_id", String(128), nullable=True),
    Column("transaction_id", String(128), nullable=True),
    Column("refund_id", String(128), nullable=True),
    Column("refunded_total", BigInteger, nullable=True),
    Column("created_at", _TS, nullable=False),
    Column("body", LargeBinary, nullable=False),  # the exact JSON bytes subscribers receive
    Index("ix_payhook_events_order_id", "order_id"),
    Index("ix_payhook_events_type", "type"),
    Index("ix_payhook_events_created_at", "created_at"),
    # PostgreSQL only (migration 0003): SQLite finds a trade's refunds by event_key range.
    Index("ix_payhook_events_trade", "provider", "merchant_id", "transaction_id").ddl_if(
        dialect="postgresql"
    ),
)

subscriptions = Table(
    "payhook_subscriptions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("kind", String(16), nullable=False, server_default="http"),  # http | handler
    Column("url", Text, nullable=True),
    Column("events", Text, nullable=False),  # JSON list of filters
    Column("secrets", Text, nullable=False, server_default="[]"),  # JSON list (see dispatch)
    Column("enabled", Boolean, nullable=False, server_default=text("true")),
    Column("disabled_reason", Text, nullable=True),
    Column("source", String(16), nullable=False, server_default="api"),  # config | api | code
    Column("created_at", _TS, nullable=False),
    Column("updated_at", _TS, nullable=False),
)

deliveries = Table(
    "payhook_deliveries",
    metadata,
    Column("id", String(32), primary_key=True),  # dlv_<ulid>
    Column(
        "event_id",
        String(32),
        ForeignKey("payhook_events.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column(
        "subscription_id",
        String(32),
        ForeignKey("payhook_subscriptions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # pending -> succeeded | (failed -> retry) ... -> dead
    Column("status", String(16), nullable=False),
    Column("attempt_count", Integer, nullable=False, server_default="0"),
    # When the row is next due (indexed: the claim walks ix_payhook_deliveries_due).
    Column("next_attempt_at", _TS, nullable=False),
    Column("claim_token", String(32), nullable=True),
    Column("claimed_at", _TS, nullable=True),
    Column("created_at", _TS, nullable=False),
    Column("updated_at", _TS, nullable=False),
    Column("last_attempt_at", _TS, nullable=True),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    # A claim holds the row until lease_until; then it is due again by itself (a crashed
    # worker's rows). No index names it, and the claim touches no indexed column, so on
    # PostgreSQL the claim is a HOT update (with the table's fillfactor leaving room).
    Column("lease_until", _TS, nullable=True),
    Index(
        "ix_payhook_deliveries_due",
        "next_attempt_at",
        postgresql_where=text("status IN ('pending', 'failed')"),
        sqlite_where=text("status IN ('pending', 'failed')"),
    ),
    Index("ix_payhook_deliveries_event_id", "event_id"),
    Index("ix_payhook_deliveries_subscription_status", "subscription_id", "status"),
)

attempts = Table(
    "payhook_delivery_attempts",
    metadata,
    Column("id", _BIGID, primary_key=True, autoincrement=True),
    Column(
        "delivery_id",
        String(32),
        ForeignKey("payhook_deliveries.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("attempted_at", _TS, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("latency_ms", Integer, nullable=True),
    # timeout | connect | dns | tls | http | handler
    Column("error_class", String(16), nullable=True),
    Column("error", Text, nullable=True),
    Column("response_body", Text, nullable=True),  # first 1 KiB
    Index("ix_payhook_delivery_attempts_delivery_id", "delivery_id"),
    Index("ix_payhook_delivery_attempts_attempted_at", "attempted_at"),
)

platform_certificates = Table(
    "payhook_platform_certificates",
    metadata,
    Column("channel", String(64), primary_key=True),
    Column("serial_no", String(64), primary_key=True),  # upper-case hex
    Column("pem", Text, nullable=False),
    Column("effective_time", _TS, nullable=True),
    Column("expire_time", _TS, nullable=True),
    Column("fetched_at", _TS, nullable=False),
)
