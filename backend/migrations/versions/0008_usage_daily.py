"""usage_daily roll-up, isolation and retention settings per home, tablet heartbeat figures

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 08:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "home_id",
            sa.String(length=32),
            sa.ForeignKey("homes.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column(
            "resident_id",
            sa.String(length=32),
            sa.ForeignKey("residents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("calls_made", sa.Integer(), nullable=False),
        sa.Column("calls_received", sa.Integer(), nullable=False),
        sa.Column("calls_missed", sa.Integer(), nullable=False),
        sa.Column("call_seconds", sa.Integer(), nullable=False),
        sa.Column("activities", sa.JSON(), nullable=False),
        sa.Column("activity_seconds", sa.Integer(), nullable=False),
        sa.Column("rolled_up_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("home_id", "resident_id", "day"),
    )
    op.create_index("ix_usage_daily_home_id", "usage_daily", ["home_id"])
    op.create_index("ix_usage_daily_resident_id", "usage_daily", ["resident_id"])
    op.create_index("ix_usage_daily_day", "usage_daily", ["day"])
    with op.batch_alter_table("homes") as batch:
        batch.add_column(
            sa.Column("isolation_days", sa.Integer(), nullable=False, server_default="7")
        )
        batch.add_column(
            sa.Column("retention_days", sa.Integer(), nullable=False, server_default="90")
        )
    with op.batch_alter_table("tablets") as batch:
        batch.add_column(sa.Column("battery_percent", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("charging", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("free_storage_mb", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tablets") as batch:
        for column in ("heartbeat_at", "free_storage_mb", "charging", "battery_percent"):
            batch.drop_column(column)
    with op.batch_alter_table("homes") as batch:
        batch.drop_column("retention_days")
        batch.drop_column("isolation_days")
    op.drop_table("usage_daily")
