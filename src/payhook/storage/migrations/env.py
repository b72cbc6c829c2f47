"""Alembic environment: runs on the connection payhook hands in (see storage/_migrate.py)."""

from __future__ import annotations

from alembic import context

from payhook.storage._tables import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - payhook always passes a connection
    raise RuntimeError("run payhook migrations with `payhook db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    version_table="payhook_alembic_version",
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    # storage/_migrate.py's record of what was applied (for its report and its errors).
    on_version_apply=config.attributes.get("on_version_apply"),
)
with context.begin_transaction():
    context.run_migrations()
