"""Small outputs are kept in the database (``row_blobs``), written in the finish's transaction.

An output of at most ``TEEFLOW_ROW_OUTPUT_BYTES`` of ciphertext no longer costs a blob file and
its two fsyncs; its ``blob_key`` starts with ``rows/`` (server/row_blobs.py). Existing outputs stay
in the blob store.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 01:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "row_blobs",
        sa.Column("blob_key", sa.String(length=512), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("blob_key", name=op.f("pk_row_blobs")),
    )


def downgrade() -> None:
    op.drop_table("row_blobs")
