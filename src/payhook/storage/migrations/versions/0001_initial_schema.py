"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-28 01:57:16.082472
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "payhook_events",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("event_key", sa.String(length=512), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("merchant_id", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("transaction_id", sa.String(length=128), nullable=True),
        sa.Column("refund_id", sa.String(length=128), nullable=True),
        sa.Column("refunded_total", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payhook_events")),
        sa.UniqueConstraint("event_key", name=op.f("uq_payhook_events_event_key")),
    )
    with op.batch_alter_table("payhook_events", schema=None) as batch_op:
        batch_op.create_index("ix_payhook_events_order_id", ["order_id"], unique=False)
        batch_op.create_index(
            "ix_payhook_events_trade", ["provider", "merchant_id", "transaction_id"], unique=False
        )
        batch_op.create_index("ix_payhook_events_type", ["type"], unique=False)

    op.create_table(
        "payhook_notifications",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("notification_id", sa.String(length=128), nullable=True),
        sa.Column("event_ids", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payhook_notifications")),
    )
    with op.batch_alter_table("payhook_notifications", schema=None) as batch_op:
        batch_op.create_index("ix_payhook_notifications_received_at", ["received_at"], unique=False)

    op.create_table(
        "payhook_platform_certificates",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("serial_no", sa.String(length=64), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("effective_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expire_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "channel", "serial_no", name=op.f("pk_payhook_platform_certificates")
        ),
    )
    op.create_table(
        "payhook_subscriptions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), server_default="http", nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("secrets", sa.Text(), server_default="[]", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("(true)"), nullable=False),
        sa.Column("disabled_reason", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), server_default="api", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payhook_subscriptions")),
        sa.UniqueConstraint("name", name=op.f("uq_payhook_subscriptions_name")),
    )
    op.create_table(
        "payhook_deliveries",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("subscription_id", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempt_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claim_token", sa.String(length=32), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["payhook_events.id"],
            name=op.f("fk_payhook_deliveries_event_id_payhook_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["payhook_subscriptions.id"],
            name=op.f("fk_payhook_deliveries_subscription_id_payhook_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payhook_deliveries")),
    )
    with op.batch_alter_table("payhook_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payhook_deliveries_due",
            ["next_attempt_at"],
            unique=False,
            postgresql_where=sa.text("status IN ('pending', 'failed')"),
            sqlite_where=sa.text("status IN ('pending', 'failed')"),
        )
        batch_op.create_index("ix_payhook_deliveries_event_id", ["event_id"], unique=False)
        batch_op.create_index(
            "ix_payhook_deliveries_subscription_status", ["subscription_id", "status"], unique=False
        )

    op.create_table(
        "payhook_delivery_attempts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("delivery_id", sa.String(length=32), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error_class", sa.String(length=16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["payhook_deliveries.id"],
            name=op.f("fk_payhook_delivery_attempts_delivery_id_payhook_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payhook_delivery_attempts")),
    )
    with op.batch_alter_table("payhook_delivery_attempts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_payhook_delivery_attempts_delivery_id", ["delivery_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table("payhook_delivery_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_payhook_delivery_attempts_delivery_id")

    op.drop_table("payhook_delivery_attempts")
    with op.batch_alter_table("payhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_payhook_deliveries_subscription_status")
        batch_op.drop_index("ix_payhook_deliveries_event_id")
        batch_op.drop_index(
            "ix_payhook_deliveries_due",
            postgresql_where=sa.text("status IN ('pending', 'failed')"),
            sqlite_where=sa.text("status IN ('pending', 'failed')"),
        )

    op.drop_table("payhook_deliveries")
    op.drop_table("payhook_subscriptions")
    op.drop_table("payhook_platform_certificates")
    with op.batch_alter_table("payhook_notifications", schema=None) as batch_op:
        batch_op.drop_index("ix_payhook_notifications_received_at")

    op.drop_table("payhook_notifications")
    with op.batch_alter_table("payhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_payhook_events_type")
        batch_op.drop_index("ix_payhook_events_trade")
        batch_op.drop_index("ix_payhook_events_order_id")

    op.drop_table("payhook_events")
