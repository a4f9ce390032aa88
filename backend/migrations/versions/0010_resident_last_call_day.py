"""residents.last_call_day: the last rolled-up day with a call, kept by the roll-up

The isolation alerts (first page of the dashboard) read it instead of searching ``usage_daily``
for who had a call in the last N days: one scan of the residents (bench/dashboard.py: 8,000)
instead of an anti-join over every recent call day (28,000 a week for a département). The
roll-up's upsert (``backend.services.rollup.upsert``) keeps it equal to what this backfill
computes.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 16:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# One step backwards per resident in the partial index ix_usage_daily_calls (migration 0009).
BACKFILL = """
UPDATE residents SET last_call_day = (
    SELECT max(usage_daily.day) FROM usage_daily
    WHERE usage_daily.resident_id = residents.id
      AND (usage_daily.calls_made > 0 OR usage_daily.calls_received > 0)
)
"""


def upgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.add_column(sa.Column("last_call_day", sa.Date(), nullable=True))
    op.execute(BACKFILL)


def downgrade() -> None:
    with op.batch_alter_table("residents") as batch:
        batch.drop_column("last_call_day")
