"""Initial schema: users, tokens, datasets, functions, tasks, approvals, outputs, events,
checkpoints, executors and the hash-chained audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25 21:04:16.019825
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

_TS = sa.DateTime(timezone=True)
_JSON = sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("ts", _TS, nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=256), nullable=False),
        sa.Column("details", _JSON, nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
    )
    op.create_table(
        "executors",
        sa.Column("executor_id", sa.String(length=64), nullable=False),
        sa.Column("tee", sa.String(length=32), nullable=False),
        sa.Column("measurement", sa.String(length=128), nullable=False),
        sa.Column("evidence", _JSON, nullable=False),
        sa.Column("public_keys", _JSON, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("registered_at", _TS, nullable=False),
        sa.Column("last_seen_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("executor_id", name=op.f("pk_executors")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_executors_token_hash")),
    )
    op.create_table(
        "login_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_failures")),
    )
    op.create_index(
        "ix_login_failures_username_at", "login_failures", ["username", "at"], unique=False
    )

    op.create_table(
        "users",
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("sign_pk", sa.Text(), nullable=False),
        sa.Column("enc_pk", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_users")),
    )
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("creator", sa.String(length=128), nullable=False),
        sa.Column("contract", _JSON, nullable=False),
        sa.Column("contract_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("failure_reason", sa.Text(), nullable=True),
        sa.Column("receipt", _JSON, nullable=True),
        sa.Column("lease_owner", sa.String(length=64), nullable=True),
        sa.Column("lease_expires_at", _TS, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["creator"], ["users.username"], name=op.f("fk_tasks_creator_users")
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_tasks")),
    )
    op.create_index(op.f("ix_tasks_creator"), "tasks", ["creator"], unique=False)
    op.create_index("ix_tasks_status_created_at", "tasks", ["status", "created_at"], unique=False)

    op.create_table(
        "tokens",
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["username"],
            ["users.username"],
            name=op.f("fk_tokens_username_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_hash", name=op.f("pk_tokens")),
    )
    op.create_table(
        "approvals",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("wrapped_keys", _JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.task_id"],
            name=op.f("fk_approvals_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["username"], ["users.username"], name=op.f("fk_approvals_username_users")
        ),
        sa.PrimaryKeyConstraint("task_id", "username", name=op.f("pk_approvals")),
    )
    op.create_table(
        "checkpoints",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=512), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.task_id"],
            name=op.f("fk_checkpoints_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_checkpoints")),
    )
    op.create_table(
        "datasets",
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("ciphertext_sha256", sa.String(length=64), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=True),
        sa.Column("blob_key", sa.String(length=512), nullable=True),
        sa.Column("produced_by_task", sa.String(length=64), nullable=True),
        sa.Column("meta", _JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner"], ["users.username"], name=op.f("fk_datasets_owner_users")
        ),
        sa.ForeignKeyConstraint(
            ["produced_by_task"], ["tasks.task_id"], name=op.f("fk_datasets_produced_by_task_tasks")
        ),
        sa.PrimaryKeyConstraint("dataset_id", name=op.f("pk_datasets")),
    )
    op.create_index(op.f("ix_datasets_owner"), "datasets", ["owner"], unique=False)

    op.create_table(
        "events",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("recipient", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.task_id"], name=op.f("fk_events_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "seq", name=op.f("pk_events")),
    )
    op.create_index(
        "ix_events_task_id_recipient_seq", "events", ["task_id", "recipient", "seq"], unique=False
    )

    op.create_table(
        "task_participants",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.task_id"],
            name=op.f("fk_task_participants_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "username", name=op.f("pk_task_participants")),
    )
    op.create_index(
        op.f("ix_task_participants_username"), "task_participants", ["username"], unique=False
    )

    op.create_table(
        "dataset_owners",
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.dataset_id"],
            name=op.f("fk_dataset_owners_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "username", name=op.f("pk_dataset_owners")),
    )
    op.create_index(
        op.f("ix_dataset_owners_username"), "dataset_owners", ["username"], unique=False
    )

    op.create_table(
        "functions",
        sa.Column("function_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("code_sha256", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.Boolean(), nullable=False),
        sa.Column("source_dataset_id", sa.String(length=64), nullable=True),
        sa.Column("spec", _JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner"], ["users.username"], name=op.f("fk_functions_owner_users")
        ),
        sa.ForeignKeyConstraint(
            ["source_dataset_id"],
            ["datasets.dataset_id"],
            name=op.f("fk_functions_source_dataset_id_datasets"),
        ),
        sa.PrimaryKeyConstraint("function_id", name=op.f("pk_functions")),
    )
    op.create_table(
        "outputs",
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("slot", sa.String(length=128), nullable=False),
        sa.Column("blob_key", sa.String(length=512), nullable=False),
        sa.Column("ciphertext_sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("wrapped_keys", _JSON, nullable=False),
        sa.Column("joint_owners", _JSON, nullable=True),
        sa.Column("dataset_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.dataset_id"], name=op.f("fk_outputs_dataset_id_datasets")
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.task_id"],
            name=op.f("fk_outputs_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "slot", name=op.f("pk_outputs")),
    )


def downgrade() -> None:
    op.drop_table("outputs")
    op.drop_table("functions")
    op.drop_index(op.f("ix_dataset_owners_username"), table_name="dataset_owners")
    op.drop_table("dataset_owners")
    op.drop_index(op.f("ix_task_participants_username"), table_name="task_participants")
    op.drop_table("task_participants")
    op.drop_index("ix_events_task_id_recipient_seq", table_name="events")
    op.drop_table("events")
    op.drop_index(op.f("ix_datasets_owner"), table_name="datasets")
    op.drop_table("datasets")
    op.drop_table("checkpoints")
    op.drop_table("approvals")
    op.drop_table("tokens")
    op.drop_index("ix_tasks_status_created_at", table_name="tasks")
    op.drop_index(op.f("ix_tasks_creator"), table_name="tasks")
    op.drop_table("tasks")
    op.drop_table("users")
    op.drop_index("ix_login_failures_username_at", table_name="login_failures")
    op.drop_table("login_failures")
    op.drop_table("executors")
    op.drop_table("audit_log")
