"""indexes for the usage pages (isolation alerts, weekly charts, today's detail)

Found with EXPLAIN ANALYZE on bench/dashboard.py's data (100 homes, 8,000 residents, a year of
usage_daily, 90 days of detail):

- ``ix_usage_daily_calls``: the last day with a call, per resident (isolation alerts on the first
  page): a partial index, so the look-up is one step backwards in the resident's call days
  instead of a walk through every usage row (the planner otherwise scans ``ix_usage_daily_day``).
- ``ix_usage_daily_call_days``: who had a call in the last N days (the same alerts: an
  anti-join over the recent call days, instead of one look-up per resident).
- ``ix_usage_daily_home_day``: a home's weeks (home usage page, CSV).
- ``ix_tablet_events_tablet_ts``: today's activity events of a home's tablets (the roll-up's
  computation of the day not rolled up yet), and the retention job's scans by day.
- ``ix_calls_resident_created``: a resident's last call in the detail.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 08:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HAD_A_CALL = sa.text("calls_made > 0 OR calls_received > 0")


def upgrade() -> None:
    op.create_index(
        "ix_usage_daily_calls",
        "usage_daily",
        ["resident_id", "day"],
        postgresql_where=HAD_A_CALL,
        sqlite_where=HAD_A_CALL,
    )
    op.create_index(
        "ix_usage_daily_call_days",
        "usage_daily",
        ["day", "resident_id"],
        postgresql_where=HAD_A_CALL,
        sqlite_where=HAD_A_CALL,
    )
    op.create_index("ix_usage_daily_home_day", "usage_daily", ["home_id", "day"])
    op.create_index("ix_tablet_events_tablet_ts", "tablet_events", ["tablet_id", "ts"])
    op.create_index("ix_calls_resident_created", "calls", ["resident_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_calls_resident_created", table_name="calls")
    op.drop_index("ix_tablet_events_tablet_ts", table_name="tablet_events")
    op.drop_index("ix_usage_daily_home_day", table_name="usage_daily")
    op.drop_index("ix_usage_daily_call_days", table_name="usage_daily")
    op.drop_index("ix_usage_daily_calls", table_name="usage_daily")
