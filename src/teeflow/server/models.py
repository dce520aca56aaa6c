"""SQLAlchemy ORM tables of the control plane.

The control plane is untrusted: these tables hold ciphertext references, wrapped keys, signatures
and metadata only, and the enclave re-checks everything it is given. The schema is created by the
Alembic revisions in ``server/migrations`` (never by ``create_all``); a test checks the two agree.

Timestamps are stored in UTC and always come back timezone-aware (:class:`UTCDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApprovalRow",
    "AuditRow",
    "Base",
    "CheckpointRow",
    "DatasetOwnerRow",
    "DatasetRow",
    "EventRow",
    "ExecutorRow",
    "FunctionRow",
    "LoginFailureRow",
    "OutputRow",
    "RowBlobRow",
    "TaskParticipantRow",
    "TaskRow",
    "TokenRow",
    "UTCDateTime",
    "UserRow",
]

# Deterministic constraint names, so migrations can refer to them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Id = String(64)
Hash = String(64)
ContentDigest = String(71)
"""A sealed file's content digest: "blake3:" and 64 hex, or 64 hex (SHA-256); crypto/_digest.py."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that must be timezone-aware going in and is aware UTC coming out.

    SQLite has no time zones, so values are stored as naive UTC there; PostgreSQL uses timestamptz.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("timestamps must be timezone-aware (UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSONType}


class UserRow(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(128), primary_key=True)
    password_hash: Mapped[str] = mapped_column(Text)
    sign_pk: Mapped[str] = mapped_column(Text)
    enc_pk: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class TokenRow(Base):
    __tablename__ = "tokens"

    token_hash: Mapped[str] = mapped_column(Hash, primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("users.username", ondelete="CASCADE"))
    expires_at: Mapped[datetime]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LoginFailureRow(Base):
    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_username_at", "username", "at"),
        Index("ix_login_failures_source_at", "source", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Not a foreign key: failures against unknown usernames are rate limited too.
    username: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(64), server_default="")
    """The client's address as the control plane saw it."""


class DatasetRow(Base):
    __tablename__ = "datasets"

    dataset_id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    kind: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    state: Mapped[str] = mapped_column(String(16))
    ciphertext_sha256: Mapped[str | None] = mapped_column(ContentDigest)
    size: Mapped[int | None] = mapped_column(BigInteger)
    blob_key: Mapped[str | None] = mapped_column(String(512))
    produced_by_task: Mapped[str | None] = mapped_column(ForeignKey("tasks.task_id"))
    meta: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class DatasetOwnerRow(Base):
    """Joint owners of a dataset (e.g. a jointly owned task output), one row each."""

    __tablename__ = "dataset_owners"

    dataset_id: Mapped[str] = mapped_column(
        ForeignKey("datasets.dataset_id", ondelete="CASCADE"), primary_key=True
    )
    username: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


class FunctionRow(Base):
    __tablename__ = "functions"

    function_id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    owner: Mapped[str] = mapped_column(ForeignKey("users.username"))
    description: Mapped[str] = mapped_column(Text)
    code_sha256: Mapped[str] = mapped_column(Hash)
    sealed: Mapped[bool] = mapped_column(Boolean)
    source_dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.dataset_id"))
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class TaskRow(Base):
    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_status_created_at", "status", "created_at"),)

    task_id: Mapped[str] = mapped_column(Id, primary_key=True)
    creator: Mapped[str] = mapped_column(ForeignKey("users.username"), index=True)
    contract: Mapped[dict[str, Any]]
    contract_hash: Mapped[str] = mapped_column(Hash)
    status: Mapped[str] = mapped_column(String(16))
    failure_reason: Mapped[str | None] = mapped_column(Text)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    run_authorisation: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    """The creator's signed run authorisation (enclave/run_state.py), set by ``run``."""
    withdrawals: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    """username -> that participant's signed withdrawal of its approval."""
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TaskParticipantRow(Base):
    __tablename__ = "task_participants"

    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True
    )
    username: Mapped[str] = mapped_column(String(128), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


class ApprovalRow(Base):
    __tablename__ = "approvals"

    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True
    )
    username: Mapped[str] = mapped_column(ForeignKey("users.username"), primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str | None] = mapped_column(Text)
    wrapped_keys: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class OutputRow(Base):
    __tablename__ = "outputs"

    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True
    )
    slot: Mapped[str] = mapped_column(String(128), primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(512))
    ciphertext_sha256: Mapped[str] = mapped_column(ContentDigest)
    size: Mapped[int] = mapped_column(BigInteger)
    wrapped_keys: Mapped[dict[str, Any]]
    joint_owners: Mapped[list[str] | None] = mapped_column(JSONType)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.dataset_id"))


class RowBlobRow(Base):
    """A small ciphertext kept in the database instead of the blob store (server/row_blobs.py):
    written in the same transaction as the row that names its ``blob_key``."""

    __tablename__ = "row_blobs"

    blob_key: Mapped[str] = mapped_column(String(512), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class EventRow(Base):
    """An encrypted message from the enclave to one party; ``seq`` counts per task from 1."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_task_id_recipient_seq", "task_id", "recipient", "seq"),)

    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    recipient: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class CheckpointRow(Base):
    __tablename__ = "checkpoints"

    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.task_id", ondelete="CASCADE"), primary_key=True
    )
    blob_key: Mapped[str] = mapped_column(String(512))
    epoch: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class ExecutorRow(Base):
    __tablename__ = "executors"

    executor_id: Mapped[str] = mapped_column(Id, primary_key=True)
    tee: Mapped[str] = mapped_column(String(32))
    measurement: Mapped[str] = mapped_column(String(128))
    evidence: Mapped[dict[str, Any]]
    public_keys: Mapped[dict[str, Any]]
    # {measurement, epoch, signature}, signed by the enclave (enclave/key_id_claim.py).
    key_id: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    token_hash: Mapped[str] = mapped_column(Hash, unique=True)
    registered_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class AuditRow(Base):
    """One entry of the hash-chained audit log; ``seq`` is gap-free from 1 (see audit.py)."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    ts: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(Hash)
    hash: Mapped[str] = mapped_column(Hash, unique=True)
