"""delivery lease in its own column

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 06:00:00

A claim used to push ``next_attempt_at`` (indexed) to the lease expiry, so every claim
wrote new entries into all four indexes of ``payhook_deliveries``. The lease now lives in
``lease_until``, which no index names: on PostgreSQL the claim becomes a HOT update, and
``fillfactor = 80`` leaves room on each page for it. Rows claimed under 0001 keep their
lease: it was their ``next_attempt_at``, which stays as it is.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("payhook_deliveries") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE payhook_deliveries SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE payhook_deliveries RESET (fillfactor)")
    # Live leases go back into next_attempt_at, where 0001 keeps them.
    op.execute(
        "UPDATE payhook_deliveries SET next_attempt_at = lease_until "
        "WHERE lease_until IS NOT NULL AND lease_until > next_attempt_at"
    )
    with op.batch_alter_table("payhook_deliveries") as batch:
        batch.drop_column("lease_until")
