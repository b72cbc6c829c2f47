"""partial index on the refused rows left in payhook_notifications

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00

Before migration 0004, refused callbacks were stored in full in ``payhook_notifications``
(verdict ``refused``). Retention removes them after the ``refused_callbacks`` window (7 days
by default) while accepted callbacks stay for the ``events`` window (400 days): without this
index every hourly prune would read all the accepted callbacks older than a week to find the
refused ones among them. The index holds only refused rows, so once the legacy rows are gone
it is empty and the prune's look-up costs nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_payhook_notifications_refused",
        "payhook_notifications",
        ["received_at"],
        postgresql_where=sa.text("verdict = 'refused'"),
        sqlite_where=sa.text("verdict = 'refused'"),
    )


def downgrade() -> None:
    op.drop_index("ix_payhook_notifications_refused", table_name="payhook_notifications")
