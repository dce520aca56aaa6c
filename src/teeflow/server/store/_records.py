"""Errors and the frozen records the store returns (never ORM objects).

Hierarchy::

    StoreError
     ├── Conflict   the write collides with existing state (duplicate id or username, a second
     │              approval, a dataset still referenced, an older checkpoint)
     └── NotFound   the row the write refers to does not exist
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from teeflow.server.audit import AuditRecord

__all__ = [
    "TASK_STATES",
    "ApprovalRecord",
    "AuditRecord",
    "Conflict",
    "DatasetRecord",
    "EventRecord",
    "ExecutorRecord",
    "FunctionRecord",
    "NotFound",
    "OutputRecord",
    "StoreError",
    "TaskRecord",
    "UserRecord",
]

TASK_STATES: Final = frozenset(
    {"proposed", "approved", "rejected", "queued", "running", "succeeded", "failed", "canceled"}
)


class StoreError(Exception):
    """Base of the store's errors."""


class Conflict(StoreError):
    """The write collides with existing state."""


class NotFound(StoreError):
    """The row a write refers to does not exist."""


@dataclass(frozen=True)
class UserRecord:
    username: str
    password_hash: str
    sign_pk: str
    enc_pk: str
    created_at: datetime


@dataclass(frozen=True)
class DatasetRecord:
    dataset_id: str
    name: str
    kind: str
    description: str
    owner: str
    state: str  # "pending" until the ciphertext is uploaded, then "ready"
    ciphertext_sha256: str | None
    size: int | None
    blob_key: str | None
    produced_by_task: str | None
    joint_owners: tuple[str, ...]
    meta: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class FunctionRecord:
    function_id: str
    name: str
    owner: str
    description: str
    code_sha256: str
    sealed: bool
    source_dataset_id: str | None
    spec: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class TaskRecord:
    task_id: str
    creator: str
    contract: dict[str, Any]
    contract_hash: str
    participants: tuple[str, ...]
    status: str
    failure_reason: str | None
    receipt: dict[str, Any] | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    attempts: int
    created_at: datetime
    updated_at: datetime
    run_authorisation: dict[str, Any] | None = None
    withdrawals: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalRecord:
    task_id: str
    username: str
    decision: str  # "approve" | "reject"
    signature: str | None
    wrapped_keys: dict[str, str]
    created_at: datetime


@dataclass(frozen=True)
class OutputRecord:
    task_id: str
    slot: str
    blob_key: str
    ciphertext_sha256: str
    size: int
    wrapped_keys: dict[str, str]
    joint_owners: tuple[str, ...] | None
    dataset_id: str | None


@dataclass(frozen=True)
class EventRecord:
    task_id: str
    seq: int
    recipient: str
    kind: str
    payload: str
    created_at: datetime


@dataclass(frozen=True)
class ExecutorRecord:
    executor_id: str
    tee: str
    measurement: str
    evidence: dict[str, Any]
    public_keys: dict[str, Any]
    token_hash: str
    registered_at: datetime
    last_seen_at: datetime
    key_id: dict[str, Any] | None = None
