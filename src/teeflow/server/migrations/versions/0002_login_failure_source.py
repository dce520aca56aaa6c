"""Sign-in failures record their source address, so throttling is per source and per account
rather than a lockout anyone can set off for another member's name (issue 17).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 20:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("login_failures") as batch:
        batch.add_column(
            sa.Column("source", sa.String(length=64), nullable=False, server_default="")
        )
    op.create_index("ix_login_failures_source_at", "login_failures", ["source", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_login_failures_source_at", table_name="login_failures")
    with op.batch_alter_table("login_failures") as batch:
        batch.drop_column("source")
