"""Work leasing: executors pull queued tasks, keep their lease alive, and report the result.

A lease is a compare-and-set on the task row. PostgreSQL picks with ``FOR UPDATE SKIP LOCKED`` so
concurrent workers skip each other's candidate rows; SQLite takes the write lock up front
(``BEGIN IMMEDIATE``). Either way two callers never get the same task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import and_, or_, select, update

from teeflow.server.audit import AuditEntry
from teeflow.server.models import TaskRow
from teeflow.server.store._base import StoreBase, require_aware
from teeflow.server.store._records import TaskRecord
from teeflow.server.store._tasks import task_record

__all__ = ["SKIP_WINDOW", "LeaseMixin"]

SKIP_WINDOW = 64
"""How many waiting tasks a lease that skips some (sessions) looks through."""


class LeaseMixin(StoreBase):
    def lease_next(
        self,
        *,
        executor_id: str,
        now: datetime,
        lease_seconds: float,
        audit: AuditEntry | None = None,
        skip: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> TaskRecord | None:
        """Lease the oldest task that is ``queued``, or ``running`` with an expired lease.

        With ``skip``, tasks whose contract it holds true for are passed over (an executor that
        serves an inference session asks for batch work only); only the oldest
        :data:`SKIP_WINDOW` waiting tasks are looked at.

        The task becomes ``running`` under ``executor_id`` until ``now + lease_seconds``, and its
        ``attempts`` grows by one. Returns None when nothing is waiting. With ``audit``, the entry
        is logged with ``subject`` set to the leased task's id and ``attempt`` added to details.
        """
        now = require_aware(now)
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        ready = or_(
            TaskRow.status == "queued",
            and_(TaskRow.status == "running", TaskRow.lease_expires_at <= now),
        )
        query = (
            select(TaskRow)
            .where(ready)
            .order_by(TaskRow.created_at, TaskRow.task_id)
            .limit(1 if skip is None else SKIP_WINDOW)
        )
        if self.is_postgresql:
            query = query.with_for_update(skip_locked=True)
        with self._write() as session:
            row = next(
                (r for r in session.scalars(query) if skip is None or not skip(r.contract)), None
            )
            if row is None:
                return None
            row.status = "running"
            row.lease_owner = executor_id
            row.lease_expires_at = now + timedelta(seconds=lease_seconds)
            row.attempts = row.attempts + 1
            row.updated_at = now
            session.flush()
            if audit is not None:
                details = {**audit.details, "attempt": row.attempts}
                self._maybe_audit(session, audit, now, subject=row.task_id, details=details)
            return task_record(session, row)

    def heartbeat(
        self, *, task_id: str, executor_id: str, now: datetime, lease_seconds: float
    ) -> bool:
        """Extend the lease to ``now + lease_seconds``.

        False when the task is no longer ``running`` under ``executor_id`` (re-leased to another
        executor, canceled, finished): the executor must stop. A lease that lapsed but was not yet
        taken by anyone else is still this executor's and is extended.
        """
        now = require_aware(now)
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        with self._write() as session:
            result = session.execute(
                update(TaskRow)
                .where(
                    TaskRow.task_id == task_id,
                    TaskRow.status == "running",
                    TaskRow.lease_owner == executor_id,
                )
                .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
                .execution_options(synchronize_session=False)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def finish(
        self,
        *,
        task_id: str,
        executor_id: str,
        status: Literal["succeeded", "failed"],
        receipt: dict[str, Any] | None,
        failure_reason: str | None,
        now: datetime,
        audit: AuditEntry | None = None,
    ) -> bool:
        """Record the result; only the lease owner of a ``running`` task may. False otherwise."""
        now = require_aware(now)
        if status not in ("succeeded", "failed"):
            raise ValueError("status must be 'succeeded' or 'failed'")
        with self._write() as session:
            result = session.execute(
                update(TaskRow)
                .where(
                    TaskRow.task_id == task_id,
                    TaskRow.status == "running",
                    TaskRow.lease_owner == executor_id,
                )
                .values(
                    status=status,
                    receipt=receipt,
                    failure_reason=failure_reason,
                    lease_expires_at=None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            if not result.rowcount:  # type: ignore[attr-defined]
                return False
            self._maybe_audit(session, audit, now)
            return True
