"""The rows a finish records for each sealed output (store/_lease.py ``finish_batch``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from teeflow.server.models import DatasetOwnerRow, DatasetRow, OutputRow, RowBlobRow

__all__ = ["NewOutput", "insert_output"]


@dataclass(frozen=True)
class NewOutput:
    """One sealed output a finish records. ``dataset_id``, ``dataset_name`` and ``meta`` are
    for a jointly owned output (``joint_owners``), which also becomes a dataset. With
    ``content``, the ciphertext is stored under ``blob_key`` in the ``row_blobs`` table in the
    finish's own transaction (server/row_blobs.py); without, it is already in the blob store."""

    slot: str
    blob_key: str
    ciphertext_sha256: str
    size: int
    wrapped_keys: dict[str, str]
    joint_owners: list[str] | None = None
    dataset_id: str | None = None
    dataset_name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    content: bytes | None = None


# Built once each, as the task path's other statements (a statement caches its compiled SQL).
_INSERT_ROW_BLOB = insert(RowBlobRow)
_INSERT_DATASET = insert(DatasetRow)
_INSERT_OWNER = insert(DatasetOwnerRow)
_INSERT_OUTPUT = insert(OutputRow)


def insert_output(connection: Connection, task_id: str, output: NewOutput, now: datetime) -> None:
    """Insert ``output`` of ``task_id`` in ``connection``'s transaction: its row blob when it
    has ``content``, its jointly owned dataset when it has ``joint_owners``, and its output row.
    IntegrityError if the slot already has an output."""
    if output.content is not None:
        connection.execute(
            _INSERT_ROW_BLOB, [{"blob_key": output.blob_key, "content": output.content}]
        )
    if output.joint_owners:
        if output.dataset_id is None:
            raise ValueError("a jointly owned output needs a dataset_id")
        connection.execute(
            _INSERT_DATASET,
            [
                {
                    "dataset_id": output.dataset_id,
                    "name": output.dataset_name,
                    "kind": "model",
                    "description": "joint output; sealed to the enclave",
                    "owner": output.joint_owners[0],
                    "state": "ready",
                    "ciphertext_sha256": output.ciphertext_sha256,
                    "size": output.size,
                    "blob_key": output.blob_key,
                    "produced_by_task": task_id,
                    "meta": dict(output.meta),
                    "created_at": now,
                }
            ],
        )
        connection.execute(
            _INSERT_OWNER,
            [
                {"dataset_id": output.dataset_id, "username": name, "position": position}
                for position, name in enumerate(dict.fromkeys(output.joint_owners))
            ],
        )
    connection.execute(
        _INSERT_OUTPUT,
        [
            {
                "task_id": task_id,
                "slot": output.slot,
                "blob_key": output.blob_key,
                "ciphertext_sha256": output.ciphertext_sha256,
                "size": output.size,
                "wrapped_keys": dict(output.wrapped_keys),
                "joint_owners": (
                    list(output.joint_owners) if output.joint_owners is not None else None
                ),
                "dataset_id": output.dataset_id if output.joint_owners else None,
            }
        ],
    )
