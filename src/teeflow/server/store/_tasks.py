"""Tasks: contract, guarded status transitions, approvals, outputs, events and checkpoints."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from functools import cache
from typing import Any, Literal

from sqlalchemy import Connection, Row, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session

from teeflow.server.audit import AuditEntry
from teeflow.server.models import (
    ApprovalRow,
    CheckpointRow,
    DatasetRow,
    EventRow,
    OutputRow,
    TaskParticipantRow,
    TaskRow,
)
from teeflow.server.store._base import StoreBase, require_aware
from teeflow.server.store._records import (
    TASK_STATES,
    ApprovalRecord,
    Conflict,
    EventRecord,
    NotFound,
    OutputRecord,
    TaskRecord,
)

__all__ = [
    "TASK_BY_ID",
    "DatasetFacts",
    "TasksMixin",
    "approval_record",
    "input_dataset_ids",
    "task_record",
]

_TRANSITION_FIELDS = frozenset({"failure_reason", "receipt", "run_authorisation"})


_TASKS = TaskRow.__table__
_PARTICIPANTS = TaskParticipantRow.__table__
_APPROVALS = ApprovalRow.__table__
_DATASETS = DatasetRow.__table__

# The task path's reads, built once: a statement object caches its compiled SQL, so running one
# again skips building, hashing and looking it up (decision 0025's hot paths).
TASK_BY_ID = select(_TASKS).where(_TASKS.c.task_id == bindparam("task_id"))
_PARTICIPANTS_OF = (
    select(_PARTICIPANTS.c.username)
    .where(_PARTICIPANTS.c.task_id == bindparam("task_id"))
    .order_by(_PARTICIPANTS.c.position)
)
_APPROVALS_OF = (
    select(_APPROVALS)
    .where(_APPROVALS.c.task_id == bindparam("task_id"))
    .order_by(_APPROVALS.c.created_at, _APPROVALS.c.username)
)
_OUTPUTS = OutputRow.__table__
_OUTPUTS_OF = (
    select(_OUTPUTS).where(_OUTPUTS.c.task_id == bindparam("task_id")).order_by(_OUTPUTS.c.slot)
)
_FACTS = select(_DATASETS.c.dataset_id, _DATASETS.c.size, _DATASETS.c.meta)
_DATASET_FACTS = _FACTS.where(_DATASETS.c.dataset_id.in_(bindparam("ids", expanding=True)))
# Most tasks have one input: ``=`` skips rendering an expanding IN list on every call.
_ONE_DATASET_FACTS = _FACTS.where(_DATASETS.c.dataset_id == bindparam("id"))

# Status of a task, only for one of its participants: a long-poll's check, one small read.
_PARTICIPANT_STATUS = (
    select(_TASKS.c.status)
    .join(_PARTICIPANTS, _PARTICIPANTS.c.task_id == _TASKS.c.task_id)
    .where(
        _TASKS.c.task_id == bindparam("task_id"),
        _PARTICIPANTS.c.username == bindparam("username"),
    )
)


@cache
def _transition_statement(from_states: tuple[str, ...], fields: tuple[str, ...]) -> Any:
    """The compare-and-set UPDATE of :meth:`TasksMixin.transition` from one of ``from_states``
    setting ``fields`` (a sorted subset of its optional fields) besides status and time, built
    once per such pair (the code names a handful)."""
    values = {
        "status": bindparam("b_to"),
        "updated_at": bindparam("b_now", type_=_TASKS.c.updated_at.type),
        **{name: bindparam(f"b_{name}", type_=_TASKS.c[name].type) for name in fields},
    }
    return (
        update(TaskRow)
        .where(
            _TASKS.c.task_id == bindparam("b_task_id"),
            # ``=`` for one state: an IN list would be rendered again on every call
            _TASKS.c.status == from_states[0]
            if len(from_states) == 1
            else _TASKS.c.status.in_(from_states),
        )
        .values(values)
        .returning(*_TASKS.c)
    )


_INSERT_TASK = insert(TaskRow)
_INSERT_PARTICIPANT = insert(TaskParticipantRow)
_COUNT = (
    select(func.count())
    .select_from(_TASKS)
    .where(
        _TASKS.c.creator == bindparam("creator"),
        _TASKS.c.status.in_(bindparam("statuses", expanding=True)),
    )
)
_COUNT_NAMING = _COUNT.where(
    _TASKS.c.task_id.in_(
        select(_PARTICIPANTS.c.task_id).where(_PARTICIPANTS.c.username == bindparam("participant"))
    )
)

DatasetFacts = dict[str, tuple[int | None, dict[str, Any]]]
"""Dataset id -> ``(ciphertext size in bytes or None, meta)``, for the datasets that exist."""


def task_record(
    session: Session | Connection,
    row: TaskRow | Row[Any],
    participants: Iterable[str] | None = None,
) -> TaskRecord:
    """The record of an ORM row or a Core row of the tasks table (same attribute names);
    ``participants`` (in order) when the caller read them already, else they are read here."""
    if participants is None:
        connection = session.connection() if isinstance(session, Session) else session
        participants = connection.execute(_PARTICIPANTS_OF, {"task_id": row.task_id}).scalars()
    return TaskRecord(
        task_id=row.task_id,
        creator=row.creator,
        contract=dict(row.contract),
        contract_hash=row.contract_hash,
        participants=tuple(participants),
        status=row.status,
        failure_reason=row.failure_reason,
        receipt=dict(row.receipt) if row.receipt is not None else None,
        lease_owner=row.lease_owner,
        lease_expires_at=row.lease_expires_at,
        attempts=row.attempts,
        created_at=row.created_at,
        updated_at=row.updated_at,
        run_authorisation=dict(row.run_authorisation) if row.run_authorisation else None,
        withdrawals=dict(row.withdrawals or {}),
    )


def _approvals(session: Session | Connection, task_id: str) -> list[ApprovalRecord]:
    connection = session.connection() if isinstance(session, Session) else session
    return [approval_record(row) for row in connection.execute(_APPROVALS_OF, {"task_id": task_id})]


def _dataset_facts(connection: Connection, dataset_ids: Collection[str]) -> DatasetFacts:
    ids = sorted(set(dataset_ids))
    if not ids:
        return {}
    if len(ids) == 1:
        rows = connection.execute(_ONE_DATASET_FACTS, {"id": ids[0]})
    else:
        rows = connection.execute(_DATASET_FACTS, {"ids": ids})
    return {row[0]: (row[1], dict(row[2] or {})) for row in rows}


def input_dataset_ids(contract: dict[str, Any]) -> list[str]:
    """The dataset ids a contract's inputs name (a joint input names none: ``""``)."""
    return [spec.get("dataset_id", "") for spec in contract.get("inputs", {}).values()]


def _lock_task(session: Session, task_id: str) -> TaskRow:
    row = session.get(TaskRow, task_id, with_for_update=True)
    if row is None:
        raise NotFound(f"task {task_id!r} does not exist")
    return row


class TasksMixin(StoreBase):
    def create_task(
        self,
        *,
        task_id: str,
        creator: str,
        contract: dict[str, Any],
        contract_hash: str,
        participants: list[str],
        now: datetime,
        audit: AuditEntry | None = None,
    ) -> TaskRecord:
        """Record a proposed task; :class:`Conflict` on a reused id or an unknown creator."""
        now = require_aware(now)
        with self._write(f"task {task_id!r} cannot be created") as session:
            connection = session.connection()
            values: dict[str, Any] = {
                "task_id": task_id,
                "creator": creator,
                "contract": dict(contract),
                "contract_hash": contract_hash,
                "status": "proposed",
                "attempts": 0,
                "created_at": now,
                "updated_at": now,
            }
            connection.execute(_INSERT_TASK, [values])
            named = tuple(dict.fromkeys(participants))
            if named:
                connection.execute(
                    _INSERT_PARTICIPANT,
                    [
                        {"task_id": task_id, "username": username, "position": position}
                        for position, username in enumerate(named)
                    ],
                )
            self._maybe_audit(session, audit, now)
            return TaskRecord(
                task_id=task_id,
                creator=creator,
                contract=values["contract"],
                contract_hash=contract_hash,
                participants=named,
                status="proposed",
                failure_reason=None,
                receipt=None,
                lease_owner=None,
                lease_expires_at=None,
                attempts=0,
                created_at=now,
                updated_at=now,
                run_authorisation=None,
                withdrawals={},
            )

    def get_task(self, task_id: str) -> TaskRecord | None:
        with self._core_read() as connection:
            row = connection.execute(TASK_BY_ID, {"task_id": task_id}).first()
            return task_record(connection, row) if row else None

    def participant_task_status(self, task_id: str, username: str) -> str | None:
        """The task's status if ``username`` takes part in it; None if it does not or there is
        no such task (one small read, for long-polls)."""
        with self._core_read() as connection:
            return connection.execute(
                _PARTICIPANT_STATUS, {"task_id": task_id, "username": username}
            ).scalar()

    def task_view(
        self, task_id: str
    ) -> tuple[TaskRecord, list[ApprovalRecord], DatasetFacts] | None:
        """The task with what every view of it shows, in one read transaction: the task, its
        approvals and its input datasets' facts (as :meth:`task_view_facts`); None if no task."""
        with self._core_read() as connection:
            row = connection.execute(TASK_BY_ID, {"task_id": task_id}).first()
            if row is None:
                return None
            task = task_record(connection, row)
            approvals = _approvals(connection, task_id)
            return task, approvals, _dataset_facts(connection, input_dataset_ids(task.contract))

    def list_tasks(
        self,
        *,
        participant: str,
        role: Literal["creator", "invited"] | None = None,
        status: str | None = None,
        creator: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[TaskRecord]:
        """Tasks the user created or takes part in, oldest first.

        ``role`` keeps those the user created (``creator``) or was named in by someone else
        (``invited``); ``status`` and ``creator`` filter further; ``limit``/``offset`` page.
        """
        among = select(TaskParticipantRow.task_id).where(TaskParticipantRow.username == participant)
        mine = TaskRow.creator == participant
        invited = TaskRow.task_id.in_(among)
        where = {"creator": mine, "invited": invited & ~mine, None: or_(mine, invited)}[role]
        query = select(TaskRow).where(where).order_by(TaskRow.created_at, TaskRow.task_id)
        if status is not None:
            query = query.where(TaskRow.status == status)
        if creator is not None:
            query = query.where(TaskRow.creator == creator)
        query = query.offset(offset)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as session:
            return [task_record(session, row) for row in session.scalars(query).all()]

    def count_tasks(
        self, *, creator: str, statuses: frozenset[str], participant: str | None = None
    ) -> int:
        """Tasks ``creator`` proposed that are in one of ``statuses`` (and, with
        ``participant``, name that member)."""
        params = {"creator": creator, "statuses": sorted(statuses), "participant": participant}
        with self._core_read() as connection:
            query = _COUNT if participant is None else _COUNT_NAMING
            return int(connection.execute(query, params).scalar() or 0)

    def tasks_using(self, dataset_id: str, *, statuses: frozenset[str]) -> list[str]:
        """Ids of tasks in one of ``statuses`` whose contract takes ``dataset_id`` as an input."""
        query = select(TaskRow.task_id, TaskRow.contract).where(TaskRow.status.in_(statuses))
        with self._read() as session:
            return [
                task_id
                for task_id, contract in session.execute(query)
                if any(
                    isinstance(spec, dict) and spec.get("dataset_id") == dataset_id
                    for spec in (contract or {}).get("inputs", {}).values()
                )
            ]

    def transition(
        self,
        task_id: str,
        *,
        from_states: set[str],
        to: str,
        now: datetime,
        audit: AuditEntry | None = None,
        participants: tuple[str, ...] | None = None,
        **fields: Any,
    ) -> TaskRecord | None:
        """Atomically move a task from one of ``from_states`` to ``to`` (compare-and-set).

        ``fields`` may set ``failure_reason``, ``receipt`` and ``run_authorisation``.
        ``participants``: the task's, when the caller has read them (they never change), so
        they are not read again. Returns the updated task, or None when the task does not exist
        or was not in one of ``from_states`` (nothing changes then).
        """
        now = require_aware(now)
        unknown = (set(from_states) | {to}) - TASK_STATES
        if unknown:
            raise ValueError(f"unknown task states: {sorted(unknown)}")
        extra = set(fields) - _TRANSITION_FIELDS
        if extra:
            raise TypeError(f"transition() cannot set {sorted(extra)}")
        names = tuple(sorted(fields))
        params = {
            "b_task_id": task_id,
            "b_to": to,
            "b_now": now,
            **{f"b_{name}": fields[name] for name in names},
        }
        with self._core_write() as connection:
            statement = _transition_statement(tuple(sorted(from_states)), names)
            row = connection.execute(statement, params).first()
            if row is None:
                return None
            self._maybe_audit(connection, audit, now)
            return task_record(connection, row, participants)

    def withdraw(
        self,
        *,
        task_id: str,
        username: str,
        withdrawal: dict[str, Any],
        from_states: set[str],
        now: datetime,
        audit: AuditEntry | None = None,
    ) -> TaskRecord | None:
        """Record ``username``'s signed withdrawal and cancel the task, atomically, if it is in
        one of ``from_states``; None (nothing changes) otherwise. :class:`NotFound` if no task."""
        now = require_aware(now)
        with self._write() as session:
            row = _lock_task(session, task_id)
            if row.status not in from_states:
                return None
            row.withdrawals = {**(row.withdrawals or {}), username: dict(withdrawal)}
            row.status, row.updated_at = "canceled", now
            row.failure_reason = f"approval withdrawn by {username}"
            session.flush()
            self._maybe_audit(session, audit, now)
            return task_record(session, row)

    # -- approvals -------------------------------------------------------------------------------

    def add_approval(
        self,
        *,
        task_id: str,
        username: str,
        decision: Literal["approve", "reject"],
        signature: str | None,
        wrapped_keys: dict[str, str],
        now: datetime,
        audit: AuditEntry | None = None,
    ) -> ApprovalRecord:
        """Record one user's decision; :class:`Conflict` on a second one for the same task,
        :class:`NotFound` if the task does not exist."""
        now = require_aware(now)
        if decision not in ("approve", "reject"):
            raise ValueError("decision must be 'approve' or 'reject'")
        with self._write(f"{username!r} has already decided on task {task_id!r}") as session:
            _lock_task(session, task_id)
            row = ApprovalRow(
                task_id=task_id,
                username=username,
                decision=decision,
                signature=signature,
                wrapped_keys=dict(wrapped_keys),
                created_at=now,
            )
            session.add(row)
            session.flush()
            self._maybe_audit(session, audit, now)
            return approval_record(row)

    def list_approvals(self, task_id: str) -> list[ApprovalRecord]:
        with self._read() as session:
            return _approvals(session, task_id)

    def task_view_facts(
        self, task_id: str, dataset_ids: Collection[str]
    ) -> tuple[list[ApprovalRecord], DatasetFacts]:
        """What every view of a task shows besides the task row, in one read transaction:
        its approvals (as :meth:`list_approvals`) and, for each of ``dataset_ids`` that exists,
        ``(ciphertext size in bytes or None, meta)``."""
        with self._core_read() as connection:
            return _approvals(connection, task_id), _dataset_facts(connection, dataset_ids)

    # -- outputs ---------------------------------------------------------------------------------

    def add_output(
        self,
        *,
        task_id: str,
        slot: str,
        blob_key: str,
        ciphertext_sha256: str,
        size: int,
        wrapped_keys: dict[str, str],
        joint_owners: list[str] | None,
        dataset_id: str | None,
    ) -> OutputRecord:
        """Record a sealed output; :class:`Conflict` if the slot already has one."""
        with self._write(f"task {task_id!r} already has an output {slot!r}") as session:
            _lock_task(session, task_id)
            row = OutputRow(
                task_id=task_id,
                slot=slot,
                blob_key=blob_key,
                ciphertext_sha256=ciphertext_sha256,
                size=size,
                wrapped_keys=dict(wrapped_keys),
                joint_owners=list(joint_owners) if joint_owners is not None else None,
                dataset_id=dataset_id,
            )
            session.add(row)
            session.flush()
            return _output(row)

    def task_outputs(self, task_id: str) -> tuple[TaskRecord, list[OutputRecord]] | None:
        """The task and its outputs (as :meth:`list_outputs`) in one read transaction, for an
        output's download; None if there is no such task."""
        with self._core_read() as connection:
            row = connection.execute(TASK_BY_ID, {"task_id": task_id}).first()
            if row is None:
                return None
            outputs = connection.execute(_OUTPUTS_OF, {"task_id": task_id})
            return task_record(connection, row), [_output(output) for output in outputs]

    def list_outputs(self, task_id: str) -> list[OutputRecord]:
        """The task's outputs, by slot."""
        with self._core_read() as connection:
            return [_output(row) for row in connection.execute(_OUTPUTS_OF, {"task_id": task_id})]

    # -- events ----------------------------------------------------------------------------------

    def add_event(
        self, *, task_id: str, recipient: str, kind: str, payload: str, now: datetime
    ) -> int:
        """Append an (encrypted) event for ``recipient``; returns its seq (per task, from 1)."""
        now = require_aware(now)
        with self._write() as session:
            _lock_task(session, task_id)  # serialises seq allocation per task
            last = session.scalar(select(func.max(EventRow.seq)).where(EventRow.task_id == task_id))
            seq = (last or 0) + 1
            session.add(
                EventRow(
                    task_id=task_id,
                    seq=seq,
                    recipient=recipient,
                    kind=kind,
                    payload=payload,
                    created_at=now,
                )
            )
            return seq

    def list_events(self, *, task_id: str, recipient: str, after_seq: int = 0) -> list[EventRecord]:
        with self._read() as session:
            rows = session.scalars(
                select(EventRow)
                .where(
                    EventRow.task_id == task_id,
                    EventRow.recipient == recipient,
                    EventRow.seq > after_seq,
                )
                .order_by(EventRow.seq)
            )
            return [
                EventRecord(
                    task_id=row.task_id,
                    seq=row.seq,
                    recipient=row.recipient,
                    kind=row.kind,
                    payload=row.payload,
                    created_at=row.created_at,
                )
                for row in rows
            ]

    # -- checkpoints -----------------------------------------------------------------------------

    def put_checkpoint(self, *, task_id: str, blob_key: str, epoch: int, now: datetime) -> None:
        """Store the task's latest sealed checkpoint; :class:`Conflict` if ``epoch`` is older than
        the one stored (a stale executor must not roll a task back)."""
        now = require_aware(now)
        with self._write() as session:
            _lock_task(session, task_id)
            row = session.get(CheckpointRow, task_id)
            if row is None:
                session.add(
                    CheckpointRow(task_id=task_id, blob_key=blob_key, epoch=epoch, updated_at=now)
                )
                return
            if epoch < row.epoch:
                raise Conflict(f"task {task_id!r} already has a checkpoint of epoch {row.epoch}")
            row.blob_key, row.epoch, row.updated_at = blob_key, epoch, now

    def get_checkpoint(self, task_id: str) -> tuple[str, int] | None:
        """``(blob_key, epoch)`` of the latest checkpoint, or None."""
        with self._read() as session:
            row = session.get(CheckpointRow, task_id)
            return (row.blob_key, row.epoch) if row else None

    def task_counts(self) -> dict[str, int]:
        """Number of tasks in each state (states with none are left out), for the operator."""
        query = select(TaskRow.status, func.count()).group_by(TaskRow.status)
        with self._read() as session:
            return {str(status): int(n) for status, n in session.execute(query).all()}

    def current_leases(self) -> dict[str, str]:
        """Executor id -> the task it holds a lease on (running tasks), for the operator."""
        query = select(TaskRow.lease_owner, TaskRow.task_id).where(
            TaskRow.status == "running", TaskRow.lease_owner.is_not(None)
        )
        with self._read() as session:
            return {str(owner): str(task) for owner, task in session.execute(query).all()}


def approval_record(row: ApprovalRow | Row[Any]) -> ApprovalRecord:
    """From an ORM row or a Core row of the approvals table."""
    return ApprovalRecord(
        task_id=row.task_id,
        username=row.username,
        decision=row.decision,
        signature=row.signature,
        wrapped_keys=dict(row.wrapped_keys),
        created_at=row.created_at,
    )


def _output(row: OutputRow | Row[Any]) -> OutputRecord:
    return OutputRecord(
        task_id=row.task_id,
        slot=row.slot,
        blob_key=row.blob_key,
        ciphertext_sha256=row.ciphertext_sha256,
        size=row.size,
        wrapped_keys=dict(row.wrapped_keys),
        joint_owners=tuple(row.joint_owners) if row.joint_owners is not None else None,
        dataset_id=row.dataset_id,
    )
