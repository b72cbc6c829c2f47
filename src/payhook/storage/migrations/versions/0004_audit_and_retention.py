"""bounded refused-callback audit; indexes for retention

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 09:40:00

Refused callbacks get their own table, ``payhook_refused_callbacks``: a bounded record
(reason, channel, remote address, size, SHA-256 digest, at most 2 KiB of headers and body)
instead of a full copy in ``payhook_notifications`` (a flood of refused 60 KB callbacks grew
a database by 400 MB in 20 s). Rows refused under 0001-0003 stay in
``payhook_notifications`` with verdict ``refused`` until retention removes them.

Retention (``payhook db prune``) walks each table by time: ``received_at`` on the audit
table (indexed below), ``attempted_at`` on attempts and ``created_at`` on events.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bigid = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
    op.create_table(
        "payhook_refused_callbacks",
        sa.Column("id", bigid, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("remote_addr", sa.String(64), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("excerpt", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_payhook_refused_callbacks"),
    )
    op.create_index(
        "ix_payhook_refused_callbacks_received_at",
        "payhook_refused_callbacks",
        ["received_at"],
    )
    op.create_index(
        "ix_payhook_delivery_attempts_attempted_at",
        "payhook_delivery_attempts",
        ["attempted_at"],
    )
    op.create_index("ix_payhook_events_created_at", "payhook_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_payhook_events_created_at", table_name="payhook_events")
    op.drop_index(
        "ix_payhook_delivery_attempts_attempted_at", table_name="payhook_delivery_attempts"
    )
    op.drop_index(
        "ix_payhook_refused_callbacks_received_at", table_name="payhook_refused_callbacks"
    )
    op.drop_table("payhook_refused_callbacks")
