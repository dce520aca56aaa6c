"""A sealed file's content digest may name BLAKE3: "blake3:" and 64 hex digits (71 characters).

Datasets and outputs keep the column name ``ciphertext_sha256``; values written before stay
valid (bare SHA-256 hex of a version 1 sealed file). docs/decisions/0017.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 22:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = {"datasets": True, "outputs": False}  # table -> the column is nullable


def upgrade() -> None:
    _resize(64, 71)


def downgrade() -> None:
    # Refuses (on PostgreSQL) while a BLAKE3 digest is stored: such rows need version 2 readers.
    _resize(71, 64)


def _resize(old: int, new: int) -> None:
    for table, nullable in _TABLES.items():
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "ciphertext_sha256",
                type_=sa.String(new),
                existing_type=sa.String(old),
                existing_nullable=nullable,
            )
