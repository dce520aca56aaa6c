"""The task path's hot transactions: an approval, and what a lease hands the executor.

Each runs in one transaction with Core statements (rows, not ORM objects): an approval with the
``approved`` (or, when the creator approved with its run authorisation, ``queued``) transition it
may complete, and a lease's approvals, input datasets and checkpoint in one read. Decisions 0025
and 0029 explain why.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update

from teeflow.enclave.run_state import MAX_START_WITHIN_S, RunStateError, parse_time
from teeflow.server.audit import AuditEntry
from teeflow.server.models import ApprovalRow, CheckpointRow, DatasetRow, TaskRow
from teeflow.server.store._base import StoreBase, require_aware
from teeflow.server.store._records import ApprovalRecord, NotFound, TaskRecord
from teeflow.server.store._tasks import TASK_BY_ID, approval_record, task_record

__all__ = ["FlowMixin", "LeaseFacts", "start_window_open"]


@dataclass(frozen=True)
class LeaseFacts:
    """What a lease bundle needs besides the task: ``approvals`` (as
    :meth:`~teeflow.server.store.Store.list_approvals`), ``datasets`` (dataset id ->
    ``(blob_key or None when deleted or not uploaded, ciphertext size in bytes or None)``, for
    those that exist) and whether the task has a checkpoint."""

    approvals: list[ApprovalRecord]
    datasets: dict[str, tuple[str | None, int | None]]
    has_checkpoint: bool


_APPROVALS = ApprovalRow.__table__
_DATASETS = DatasetRow.__table__
_CHECKPOINTS = CheckpointRow.__table__
# A lease batch's facts, built once (a statement caches its compiled SQL): every task's approvals
# (each task's in the order of list_approvals), the named datasets' blobs, which have checkpoints.
_APPROVALS_OF_TASKS = (
    select(_APPROVALS)
    .where(_APPROVALS.c.task_id.in_(bindparam("task_ids", expanding=True)))
    .order_by(_APPROVALS.c.task_id, _APPROVALS.c.created_at, _APPROVALS.c.username)
)
_BLOBS_OF = select(_DATASETS.c.dataset_id, _DATASETS.c.blob_key, _DATASETS.c.size).where(
    _DATASETS.c.dataset_id.in_(bindparam("ids", expanding=True))
)
_CHECKPOINTED = select(_CHECKPOINTS.c.task_id).where(
    _CHECKPOINTS.c.task_id.in_(bindparam("task_ids", expanding=True))
)


def _approval_rows(connection: Connection, task_id: str) -> list[ApprovalRecord]:
    rows = connection.execute(_APPROVALS_OF_TASKS, {"task_ids": [task_id]})
    return [approval_record(row) for row in rows]


def start_window_open(authorisation: Any, now: datetime) -> bool:
    """Whether a run authorisation's start window (``issued_at + start_within_s``, capped as the
    enclave caps it) is still open at ``now``. The control plane's courtesy only: it queues a
    task whose creator approved with ``run`` no later than that, so an honest platform does not
    hand the enclave one it will refuse; the enclave checks the window itself."""
    body = authorisation.get("body") if isinstance(authorisation, dict) else None
    if not isinstance(body, dict):
        return False
    try:
        issued_at = parse_time(body.get("issued_at"), "issued_at")
        window = min(int(body["start_within_s"]), MAX_START_WITHIN_S)
    except (RunStateError, KeyError, TypeError, ValueError):
        return False
    return now <= issued_at + timedelta(seconds=window)


class FlowMixin(StoreBase):
    def approve_task(
        self,
        *,
        task_id: str,
        username: str,
        signature: str,
        wrapped_keys: dict[str, str],
        now: datetime,
        audit: AuditEntry | None = None,
        approved_audit: AuditEntry | None = None,
        run_authorisation: dict[str, Any] | None = None,
        queued_audit: AuditEntry | None = None,
        participants: tuple[str, ...] | None = None,
    ) -> TaskRecord:
        """Record ``username``'s approval and, when every participant has approved, move the
        task ``proposed`` -> ``approved`` (logging ``approved_audit``), in one transaction.

        ``run_authorisation`` (the creator's, checked by the caller) is stored with the task.
        When the task holds one and its start window is still open (:func:`start_window_open`)
        as the last approval arrives, the task goes on to ``queued`` (logging ``queued_audit``)
        in the same transaction; past the window it stays ``approved`` for the creator to run.

        ``participants``: the task's, when the caller has read them (they never change), so
        they are not read again. Returns the task as it is after. :class:`NotFound` if the task
        does not exist, :class:`Conflict` if ``username`` already decided on it.
        """
        now = require_aware(now)
        tasks = TaskRow.__table__
        with self._write(f"{username!r} has already decided on task {task_id!r}") as session:
            connection = session.connection()
            query = select(tasks).where(tasks.c.task_id == task_id)
            if self.is_postgresql:
                query = query.with_for_update()
            row = connection.execute(query).first()
            if row is None:
                raise NotFound(f"task {task_id!r} does not exist")
            connection.execute(
                insert(ApprovalRow).values(
                    task_id=task_id,
                    username=username,
                    decision="approve",
                    signature=signature,
                    wrapped_keys=dict(wrapped_keys),
                    created_at=now,
                )
            )
            if run_authorisation is not None:
                connection.execute(
                    update(TaskRow)
                    .where(tasks.c.task_id == task_id, tasks.c.status == "proposed")
                    .values(run_authorisation=dict(run_authorisation))
                )
                row = connection.execute(select(tasks).where(tasks.c.task_id == task_id)).one()
            task = task_record(connection, row, participants)
            approved = {
                a.username for a in _approval_rows(connection, task_id) if a.decision == "approve"
            }
            self._maybe_audit(session, audit, now)
            if task.status == "proposed" and approved >= set(task.participants):
                queue = start_window_open(task.run_authorisation, now)
                connection.execute(
                    update(TaskRow)
                    .where(tasks.c.task_id == task_id, tasks.c.status == "proposed")
                    .values(status="queued" if queue else "approved", updated_at=now)
                )
                self._maybe_audit(session, approved_audit, now)
                if queue:
                    self._maybe_audit(session, queued_audit, now)
                row = connection.execute(TASK_BY_ID, {"task_id": task_id}).one()
                task = task_record(connection, row, task.participants)  # they never change
            return task

    def lease_facts(self, task_id: str, dataset_ids: Collection[str]) -> LeaseFacts:
        """The task's approvals, its ``dataset_ids``' blob keys and sizes, and whether it has a
        checkpoint, in one read transaction."""
        return self.lease_facts_of({task_id: dataset_ids})[task_id]

    def lease_facts_of(self, wanted: Mapping[str, Collection[str]]) -> dict[str, LeaseFacts]:
        """:meth:`lease_facts` of several tasks (task id -> the dataset ids it names) in one
        read transaction of three statements, whatever their number (a lease batch)."""
        task_ids = sorted(wanted)
        if not task_ids:
            return {}
        every = sorted({d for ids in wanted.values() for d in ids})
        approvals: dict[str, list[ApprovalRecord]] = {t: [] for t in task_ids}
        with self._core_read() as connection:
            for row in connection.execute(_APPROVALS_OF_TASKS, {"task_ids": task_ids}):
                approvals[row.task_id].append(approval_record(row))
            found = (
                {
                    row.dataset_id: (row.blob_key, row.size)
                    for row in connection.execute(_BLOBS_OF, {"ids": every})
                }
                if every
                else {}
            )
            checkpointed = set(connection.execute(_CHECKPOINTED, {"task_ids": task_ids}).scalars())
        return {
            task_id: LeaseFacts(
                approvals=approvals[task_id],
                datasets={d: found[d] for d in wanted[task_id] if d in found},
                has_checkpoint=task_id in checkpointed,
            )
            for task_id in task_ids
        }
