"""Work leasing: executors pull queued tasks, keep their lease alive, and report the result.

A lease is a compare-and-set on the task row, ``UPDATE ... WHERE task_id = ? AND <still
leasable>``, so two callers never get the same task. Candidates are looked for first without
the write lock or any row lock (an executor polling an empty queue takes neither); the write
transaction (SQLite: ``BEGIN IMMEDIATE``) then sets the oldest candidate still leasable. On
PostgreSQL a second caller's compare-and-set on the same row waits for the first to commit and
then finds it taken, so a failed one always means the candidate left the queue.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Row, and_, bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError

from teeflow.server.audit import AuditEntry
from teeflow.server.models import TaskParticipantRow, TaskRow
from teeflow.server.store._base import StoreBase, require_aware
from teeflow.server.store._new_outputs import NewOutput, insert_output
from teeflow.server.store._records import Conflict, TaskRecord
from teeflow.server.store._tasks import task_record

__all__ = ["MAX_LEASE_BATCH", "SKIP_WINDOW", "Finishing", "LeaseMixin", "NewOutput"]

SKIP_WINDOW = 64
"""How many waiting tasks a lease that skips some (sessions) looks through."""

_CANDIDATES = 4
"""How many leasable tasks a lease tries, oldest first, when others take them meanwhile."""

MAX_LEASE_BATCH = 16
"""The most tasks one :meth:`LeaseMixin.lease_batch` takes."""

_TASKS = TaskRow.__table__
_READY = or_(
    _TASKS.c.status == "queued",
    and_(_TASKS.c.status == "running", _TASKS.c.lease_expires_at <= bindparam("ready_at")),
)
_QUEUED = (
    select(_TASKS.c.task_id, _TASKS.c.contract, _TASKS.c.created_at)
    .where(_TASKS.c.status == "queued")
    .order_by(_TASKS.c.created_at, _TASKS.c.task_id)
)
_LAPSED = (
    select(_TASKS.c.task_id, _TASKS.c.contract, _TASKS.c.created_at)
    .where(_TASKS.c.status == "running", _TASKS.c.lease_expires_at <= bindparam("ready_at"))
    .order_by(_TASKS.c.created_at, _TASKS.c.task_id)
)
# Built once each (a statement caches its compiled SQL): the queued and the lapsed tasks, each in
# index order (SQLite sorts an OR of the two whole, every row's contract with it), for a lease
# that looks at the oldest few or, passing some over, at the oldest SKIP_WINDOW.
_WAITING = {
    window: (_QUEUED.limit(window), _LAPSED.limit(window))
    for window in range(_CANDIDATES, MAX_LEASE_BATCH + 1)
}
_WAITING[SKIP_WINDOW] = (_QUEUED.limit(SKIP_WINDOW), _LAPSED.limit(SKIP_WINDOW))
_TAKE = (
    update(TaskRow)
    .where(_TASKS.c.task_id == bindparam("candidate"), _READY)
    .values(
        status="running",
        lease_owner=bindparam("owner"),
        lease_expires_at=bindparam("expires"),
        attempts=_TASKS.c.attempts + 1,
        updated_at=bindparam("at"),
    )
    .returning(*_TASKS.c)
)


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
        leased = self.lease_batch(
            executor_id=executor_id,
            now=now,
            lease_seconds=lease_seconds,
            limit=1,
            audit=audit,
            skip=skip,
        )
        return leased[0] if leased else None

    def lease_batch(
        self,
        *,
        executor_id: str,
        now: datetime,
        lease_seconds: float,
        limit: int,
        audit: AuditEntry | None = None,
        skip: Callable[[Mapping[str, Any]], bool] | None = None,
        one_of: Callable[[Mapping[str, Any]], bool] | None = None,
    ) -> list[TaskRecord]:
        """Lease up to ``limit`` (1 to :data:`MAX_LEASE_BATCH`) tasks as :meth:`lease_next`
        does, oldest first, in one write transaction: each is its own compare-and-set with its
        own audit entry in the chain. At most one task whose contract ``one_of`` holds true for
        is taken (an executor serves one inference session at a time). An empty list when
        nothing is waiting."""
        now = require_aware(now)
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if not 1 <= limit <= MAX_LEASE_BATCH:
            raise ValueError(f"limit must be 1 to {MAX_LEASE_BATCH}")
        want = max(limit, _CANDIDATES)
        window = want if skip is None and one_of is None else SKIP_WINDOW
        take = {
            "ready_at": now,
            "owner": executor_id,
            "expires": now + timedelta(seconds=lease_seconds),
            "at": now,
        }
        while True:
            with self._core_read() as connection:
                candidates = _pick(connection, window, want, now, skip)
            if not candidates:
                return []
            rows: list[Row[Any]] = []
            taken_one = False
            with self._core_write() as connection:
                for candidate, contract in candidates:
                    single = one_of is not None and one_of(contract)
                    if single and taken_one:
                        continue
                    row = connection.execute(_TAKE, {**take, "candidate": candidate}).first()
                    if row is None:
                        continue  # leased, canceled or finished since it was seen
                    rows.append(row)
                    taken_one = taken_one or single
                    if len(rows) >= limit:
                        break
                if audit is not None:
                    # One entry per lease, in the order taken, after every row lock is held.
                    entries = [
                        replace(
                            audit,
                            subject=row.task_id,
                            details={**audit.details, "attempt": row.attempts},
                        )
                        for row in rows
                    ]
                    self._append_audits(connection, entries, now)
                leased = _records(connection, rows)
            if leased:
                return leased
            # Every candidate left the queue meanwhile (so others made progress): look again
            # rather than report an empty queue that is not.

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
        outputs: Sequence[NewOutput] = (),
    ) -> bool:
        """Record the result and its ``outputs``, in one transaction; only the lease owner of a
        ``running`` task may. False otherwise (nothing is recorded then).

        An output with ``joint_owners`` also becomes a ``ready`` dataset (kind ``model``) owned
        jointly, whose id is its ``dataset_id``. :class:`Conflict` if a slot already has an
        output (nothing is recorded then).
        """
        one = Finishing(task_id, executor_id, status, receipt, failure_reason, audit, outputs)
        (done,) = self.finish_batch([one], now=now)
        if isinstance(done, Conflict):
            raise done
        return done

    def finish_batch(
        self, finishes: Sequence[Finishing], *, now: datetime
    ) -> list[bool | Conflict]:
        """Record several results in one transaction, each as :meth:`finish` would, in order:
        per finish True (recorded), False (not the lease owner of a running task: nothing
        recorded) or a :class:`Conflict` (a slot already has an output: nothing of that finish
        recorded, each in a savepoint of its own). The others are recorded either way."""
        now = require_aware(now)
        for one in finishes:
            if one.status not in ("succeeded", "failed"):
                raise ValueError("status must be 'succeeded' or 'failed'")
        results: list[bool | Conflict] = []
        if not finishes:
            return results
        conflict = _conflict(finishes[0].task_id) if len(finishes) == 1 else ""
        with self._core_write(conflict) as connection:
            entries: list[AuditEntry] = []
            isolated = len(finishes) > 1
            for one in finishes:
                if isolated:
                    connection.exec_driver_sql(_SAVEPOINT)
                try:
                    done = _finish_one(connection, one, now)
                except IntegrityError:
                    if not isolated:
                        raise  # _write turns it into Conflict
                    connection.exec_driver_sql(_ROLLBACK_TO_SAVEPOINT)
                    connection.exec_driver_sql(_RELEASE_SAVEPOINT)
                    results.append(Conflict(_conflict(one.task_id)))
                    continue
                if isolated:
                    connection.exec_driver_sql(_RELEASE_SAVEPOINT)
                if done and one.audit is not None:
                    entries.append(one.audit)
                results.append(done)
            # The recorded finishes' entries, in order, last in the transaction (one head read).
            self._append_audits(connection, entries, now)
        return results

    def tasks_by_id(self, task_ids: Collection[str]) -> dict[str, TaskRecord]:
        """The tasks of ``task_ids`` that exist, by id, in one read transaction (a finish
        batch checks each against its lease)."""
        ids = sorted(set(task_ids))
        if not ids:
            return {}
        with self._core_read() as connection:
            rows = connection.execute(_TASKS_BY_IDS, {"task_ids": ids}).all()
            return {record.task_id: record for record in _records(connection, rows)}


@dataclass(frozen=True)
class Finishing:
    """One finish :meth:`LeaseMixin.finish_batch` records (the arguments of
    :meth:`LeaseMixin.finish`)."""

    task_id: str
    executor_id: str
    status: Literal["succeeded", "failed"]
    receipt: dict[str, Any] | None
    failure_reason: str | None
    audit: AuditEntry | None = None
    outputs: Sequence[NewOutput] = ()


# One finish of a batch in a savepoint of its own, in fixed SQL (SQLite and PostgreSQL alike):
# ``Connection.begin_nested`` names each savepoint anew, so SQLAlchemy compiles its SAVEPOINT and
# RELEASE statements again for every finish (a fifth of a finish batch's CPU).
_SAVEPOINT = "SAVEPOINT teeflow_finish"
_RELEASE_SAVEPOINT = "RELEASE SAVEPOINT teeflow_finish"
_ROLLBACK_TO_SAVEPOINT = "ROLLBACK TO SAVEPOINT teeflow_finish"


def _conflict(task_id: str) -> str:
    return f"task {task_id!r} already has one of these outputs"


_FINISH = (
    update(TaskRow)
    .where(
        _TASKS.c.task_id == bindparam("finished"),
        _TASKS.c.status == "running",
        _TASKS.c.lease_owner == bindparam("owner"),
    )
    .values(
        status=bindparam("status"),
        receipt=bindparam("receipt"),
        failure_reason=bindparam("reason"),
        lease_expires_at=None,
        updated_at=bindparam("at"),
    )
)


def _finish_one(connection: Connection, one: Finishing, now: datetime) -> bool:
    """Set the result of a task ``one.executor_id`` holds and insert its outputs; False
    (nothing written) if it does not hold it."""
    result = connection.execute(
        _FINISH,
        {
            "finished": one.task_id,
            "owner": one.executor_id,
            "status": one.status,
            "receipt": one.receipt,
            "reason": one.failure_reason,
            "at": now,
        },
    )
    if not result.rowcount:
        return False
    for output in one.outputs:
        insert_output(connection, one.task_id, output, now)
    return True


def _pick(
    connection: Connection,
    window: int,
    want: int,
    now: datetime,
    skip: Callable[[Mapping[str, Any]], bool] | None,
) -> list[tuple[str, Mapping[str, Any]]]:
    """Ids and contracts of up to ``want`` leasable tasks among the oldest ``window``, oldest
    first, that ``skip`` does not pass over."""
    queued, lapsed = _WAITING[window]
    rows = heapq.merge(  # both oldest first; a row is decoded only when it is read
        connection.execute(queued),
        connection.execute(lapsed, {"ready_at": now}),
        key=lambda row: (row.created_at, row.task_id),
    )
    picked: list[tuple[str, Mapping[str, Any]]] = []
    for row in itertools.islice(rows, window):
        if skip is None or not skip(row.contract):
            picked.append((row.task_id, row.contract))
            if len(picked) >= want:
                break
    return picked


_TASKS_BY_IDS = select(_TASKS).where(_TASKS.c.task_id.in_(bindparam("task_ids", expanding=True)))
_PARTICIPANTS = TaskParticipantRow.__table__
_PARTICIPANTS_OF_TASKS = (
    select(_PARTICIPANTS.c.task_id, _PARTICIPANTS.c.username)
    .where(_PARTICIPANTS.c.task_id.in_(bindparam("task_ids", expanding=True)))
    .order_by(_PARTICIPANTS.c.task_id, _PARTICIPANTS.c.position)
)


def _records(connection: Connection, rows: Sequence[Row[Any]]) -> list[TaskRecord]:
    """The records of tasks-table rows, in order, their participants read in one statement."""
    if not rows:
        return []
    participants: dict[str, list[str]] = {row.task_id: [] for row in rows}
    for task_id, username in connection.execute(
        _PARTICIPANTS_OF_TASKS, {"task_ids": list(participants)}
    ):
        participants[task_id].append(username)
    return [task_record(connection, row, participants[row.task_id]) for row in rows]
