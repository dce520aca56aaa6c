"""Executors' registration records carry their key id (measurement, epoch), signed by the enclave.

Members check the signature with the attested enclave key (enclave/key_id_claim.py); the control
plane only stores it. Null for executors registered before (they re-register at restart).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 23:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executors") as batch:
        batch.add_column(sa.Column("key_id", _JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executors") as batch:
        batch.drop_column("key_id")
