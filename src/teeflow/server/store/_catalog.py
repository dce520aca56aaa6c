"""Datasets (encrypted blobs + metadata; a model is a dataset of kind ``model``) and functions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from teeflow.server.audit import AuditEntry
from teeflow.server.models import DatasetOwnerRow, DatasetRow, FunctionRow
from teeflow.server.store._base import StoreBase, require_aware
from teeflow.server.store._records import Conflict, DatasetRecord, FunctionRecord, NotFound

__all__ = ["CatalogMixin"]


def _joint_owners(session: Session, dataset_id: str) -> tuple[str, ...]:
    rows = session.scalars(
        select(DatasetOwnerRow.username)
        .where(DatasetOwnerRow.dataset_id == dataset_id)
        .order_by(DatasetOwnerRow.position)
    )
    return tuple(rows)


def _dataset(session: Session, row: DatasetRow) -> DatasetRecord:
    return DatasetRecord(
        dataset_id=row.dataset_id,
        name=row.name,
        kind=row.kind,
        description=row.description,
        owner=row.owner,
        state=row.state,
        ciphertext_sha256=row.ciphertext_sha256,
        size=row.size,
        blob_key=row.blob_key,
        produced_by_task=row.produced_by_task,
        joint_owners=_joint_owners(session, row.dataset_id),
        meta=dict(row.meta),
        created_at=row.created_at,
    )


def _function(row: FunctionRow) -> FunctionRecord:
    return FunctionRecord(
        function_id=row.function_id,
        name=row.name,
        owner=row.owner,
        description=row.description,
        code_sha256=row.code_sha256,
        sealed=row.sealed,
        source_dataset_id=row.source_dataset_id,
        spec=dict(row.spec),
        created_at=row.created_at,
    )


class CatalogMixin(StoreBase):
    # -- datasets --------------------------------------------------------------------------------

    def create_dataset(
        self,
        *,
        dataset_id: str,
        name: str,
        kind: str,
        description: str,
        owner: str,
        now: datetime,
        produced_by_task: str | None = None,
        joint_owners: list[str] | None = None,
        meta: dict[str, Any] | None = None,
        audit: AuditEntry | None = None,
    ) -> DatasetRecord:
        """Register a dataset in state ``pending`` (its ciphertext is not uploaded yet).

        :class:`Conflict` on a reused id or an unknown owner or producing task.
        """
        now = require_aware(now)
        with self._write(f"dataset {dataset_id!r} cannot be created") as session:
            row = DatasetRow(
                dataset_id=dataset_id,
                name=name,
                kind=kind,
                description=description,
                owner=owner,
                state="pending",
                produced_by_task=produced_by_task,
                meta=dict(meta or {}),
                created_at=now,
            )
            session.add(row)
            session.flush()
            for position, username in enumerate(dict.fromkeys(joint_owners or [])):
                session.add(
                    DatasetOwnerRow(dataset_id=dataset_id, username=username, position=position)
                )
            session.flush()
            self._maybe_audit(session, audit, now)
            return _dataset(session, row)

    def mark_dataset_ready(
        self,
        dataset_id: str,
        *,
        ciphertext_sha256: str,
        size: int,
        blob_key: str,
        now: datetime | None = None,
        audit: AuditEntry | None = None,
    ) -> DatasetRecord:
        """``pending`` -> ``ready`` with the uploaded ciphertext's hash, size and blob key.

        :class:`NotFound` if unknown, :class:`Conflict` if it is not pending. ``now`` is needed
        only with ``audit``.
        """
        with self._write() as session:
            row = session.get(DatasetRow, dataset_id, with_for_update=True)
            if row is None:
                raise NotFound(f"dataset {dataset_id!r} does not exist")
            if row.state != "pending":
                raise Conflict(f"dataset {dataset_id!r} is {row.state}, not pending")
            row.state = "ready"
            row.ciphertext_sha256 = ciphertext_sha256
            row.size = size
            row.blob_key = blob_key
            session.flush()
            if audit is not None:
                if now is None:
                    raise ValueError("now is required with audit")
                self._maybe_audit(session, audit, now)
            return _dataset(session, row)

    def set_dataset_meta(
        self, dataset_id: str, *, key: str, value: Any, now: datetime, audit: AuditEntry
    ) -> DatasetRecord:
        """Set one field of a dataset's metadata (e.g. its owner's signed policy) and audit it.
        :class:`NotFound` if unknown."""
        with self._write() as session:
            row = session.get(DatasetRow, dataset_id, with_for_update=True)
            if row is None:
                raise NotFound(f"dataset {dataset_id!r} does not exist")
            row.meta = {**dict(row.meta or {}), key: value}
            session.flush()
            self._maybe_audit(session, audit, require_aware(now))
            return _dataset(session, row)

    def get_dataset(self, dataset_id: str) -> DatasetRecord | None:
        with self._read() as session:
            row = session.get(DatasetRow, dataset_id)
            return _dataset(session, row) if row else None

    def list_datasets(
        self, *, owner: str | None = None, visible_to: str | None = None
    ) -> list[DatasetRecord]:
        """Datasets, oldest first; ``owner`` filters by owner, ``visible_to`` keeps those the user
        owns or jointly owns. Both filters combine."""
        query = select(DatasetRow).order_by(DatasetRow.created_at, DatasetRow.dataset_id)
        if owner is not None:
            query = query.where(DatasetRow.owner == owner)
        if visible_to is not None:
            joint = select(DatasetOwnerRow.dataset_id).where(DatasetOwnerRow.username == visible_to)
            query = query.where(
                or_(DatasetRow.owner == visible_to, DatasetRow.dataset_id.in_(joint))
            )
        with self._read() as session:
            return [_dataset(session, row) for row in session.scalars(query).all()]

    def storage_used(self, owner: str) -> int:
        """Bytes of ciphertext ``owner``'s datasets hold (uploaded, not deleted)."""
        query = select(func.coalesce(func.sum(DatasetRow.size), 0)).where(
            DatasetRow.owner == owner, DatasetRow.state == "ready"
        )
        with self._read() as session:
            return int(session.scalar(query) or 0)

    def mark_dataset_deleted(
        self, dataset_id: str, *, now: datetime, audit: AuditEntry | None = None
    ) -> str | None:
        """Mark a dataset ``deleted`` and forget its blob key, which is returned for the caller
        to delete. The row stays: contracts and the audit log still name it.
        :class:`NotFound` if unknown."""
        with self._write() as session:
            row = session.get(DatasetRow, dataset_id, with_for_update=True)
            if row is None:
                raise NotFound(f"dataset {dataset_id!r} does not exist")
            blob_key, row.blob_key, row.state = row.blob_key, None, "deleted"
            session.flush()
            self._maybe_audit(session, audit, require_aware(now))
            return blob_key

    def delete_dataset(
        self, dataset_id: str, *, now: datetime | None = None, audit: AuditEntry | None = None
    ) -> None:
        """Delete a dataset's row (the caller deletes its blob). :class:`NotFound` if unknown,
        :class:`Conflict` while a function or task output still refers to it."""
        with self._write(f"dataset {dataset_id!r} is still referenced") as session:
            session.execute(delete(DatasetOwnerRow).where(DatasetOwnerRow.dataset_id == dataset_id))
            result = session.execute(delete(DatasetRow).where(DatasetRow.dataset_id == dataset_id))
            if result.rowcount == 0:  # type: ignore[attr-defined]
                raise NotFound(f"dataset {dataset_id!r} does not exist")
            session.flush()
            if audit is not None:
                if now is None:
                    raise ValueError("now is required with audit")
                self._maybe_audit(session, audit, now)

    # -- functions -------------------------------------------------------------------------------

    def create_function(
        self,
        *,
        function_id: str,
        name: str,
        owner: str,
        description: str,
        code_sha256: str,
        sealed: bool,
        source_dataset_id: str | None,
        spec: dict[str, Any],
        now: datetime,
        audit: AuditEntry | None = None,
    ) -> FunctionRecord:
        """Register a function; :class:`Conflict` on a reused id or unknown owner or source."""
        now = require_aware(now)
        with self._write(f"function {function_id!r} cannot be created") as session:
            row = FunctionRow(
                function_id=function_id,
                name=name,
                owner=owner,
                description=description,
                code_sha256=code_sha256,
                sealed=sealed,
                source_dataset_id=source_dataset_id,
                spec=dict(spec),
                created_at=now,
            )
            session.add(row)
            session.flush()
            self._maybe_audit(session, audit, now)
            return _function(row)

    def get_function(self, function_id: str) -> FunctionRecord | None:
        with self._read() as session:
            row = session.get(FunctionRow, function_id)
            return _function(row) if row else None

    def list_functions(self) -> list[FunctionRecord]:
        with self._read() as session:
            rows = session.scalars(
                select(FunctionRow).order_by(FunctionRow.created_at, FunctionRow.function_id)
            )
            return [_function(row) for row in rows]
