"""SQLite: no trade index on payhook_events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 09:10:00

``ix_payhook_events_trade`` (provider, merchant_id, transaction_id) served one query: an
Alipay refund's share, found from the cumulative totals already recorded for the trade.
Transaction ids are random, so each new event put an entry on a different page of that
index: about a quarter of what the SQLite writer wrote to its WAL and checkpointed per
callback. On SQLite the refund query now reads a key range of the unique ``event_key``
index instead (every refund event of a trade shares a key prefix, see
``EventDraft.refund_scope``), and the index is gone. PostgreSQL keeps it.
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_payhook_events_trade", table_name="payhook_events")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index(
            "ix_payhook_events_trade",
            "payhook_events",
            ["provider", "merchant_id", "transaction_id"],
            unique=False,
        )
