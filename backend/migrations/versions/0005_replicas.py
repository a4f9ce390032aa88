"""several backend replicas: who stored an event, replica heartbeats, browser presence, call routes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tablet_events", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("received_by", sa.String(length=64), nullable=False, server_default="")
        )
    op.create_table(
        "backend_replicas",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "browser_presence",
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("replica_id", sa.String(length=64), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("contact_id", "replica_id"),
    )
    op.create_index("ix_browser_presence_replica_id", "browser_presence", ["replica_id"])
    op.create_table(
        "call_routes",
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("replica_id", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=64), nullable=False),
        sa.Column("resident_id", sa.String(length=64), nullable=False),
        sa.Column("tablet_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("call_id"),
    )
    op.create_index("ix_call_routes_replica_id", "call_routes", ["replica_id"])
    op.create_index("ix_call_routes_resident_id", "call_routes", ["resident_id"])


def downgrade() -> None:
    op.drop_table("call_routes")
    op.drop_table("browser_presence")
    op.drop_table("backend_replicas")
    with op.batch_alter_table("tablet_events", schema=None) as batch_op:
        batch_op.drop_column("received_by")
