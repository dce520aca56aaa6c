"""Tasks keep the creator's signed run authorisation and participants' signed withdrawals.

Both are handed to the enclave, which checks them itself (enclave/run_state.py); the control
plane only stores them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 19:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("run_authorisation", _JSON, nullable=True))
        batch.add_column(sa.Column("withdrawals", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("withdrawals")
        batch.drop_column("run_authorisation")
