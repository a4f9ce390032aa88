"""portraits: a photo of a resident (picker) and of a contact (home tile), chosen by staff

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ("residents", "contacts"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("portrait_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in ("contacts", "residents"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("portrait_id")
