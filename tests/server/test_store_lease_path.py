"""The lease and task-view reads of the task path (store/_lease.py, store/_tasks.py), against
SQLite and PostgreSQL (see conftest.py): the oldest leasable task wins whether it is queued or
lapsed, an idle poll on SQLite does
not queue behind a writer, and the one-transaction task view reads what the separate reads do."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from teeflow.server.db import make_engine, write_engine
from teeflow.server.store import Store, TaskRecord

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def add_task(store: Store, *, at: int) -> TaskRecord:
    return store.create_task(
        task_id=uuid.uuid4().hex, creator="alice", contract={"n": at}, contract_hash="c" * 64,
        participants=["alice", "bob"], now=T0 + timedelta(seconds=at),
    )  # fmt: skip


def queue(store: Store, task: TaskRecord) -> None:
    assert store.transition(task.task_id, from_states={"proposed"}, to="queued", now=T0)


def _lapse(store: Store, at: int) -> str:
    """A task created at ``T0 + at`` s, leased by ``gone`` for 1 s at T0 (lapsed after)."""
    task = add_task(store, at=at)
    queue(store, task)
    leased = store.lease_next(executor_id="gone", now=T0, lease_seconds=1)
    assert leased is not None and leased.task_id == task.task_id
    return task.task_id


def test_the_oldest_of_queued_and_lapsed_tasks_is_leased_first(members: Store) -> None:
    lapsed_old, lapsed_new = _lapse(members, at=0), _lapse(members, at=10)
    queued_mid, queued_new = add_task(members, at=5), add_task(members, at=15)
    queue(members, queued_new)
    queue(members, queued_mid)
    later = T0 + timedelta(seconds=2)

    order = [
        members.lease_next(executor_id="e", now=later, lease_seconds=60, skip=skip)
        for skip in (None, _never, None, _never, None)
    ]

    assert [t.task_id if t else None for t in order] == [
        lapsed_old,
        queued_mid.task_id,
        lapsed_new,
        queued_new.task_id,
        None,
    ]
    assert [t.attempts for t in order if t] == [2, 1, 2, 1]


def _never(contract: Any) -> bool:
    return False


def test_an_idle_poll_does_not_wait_for_the_sqlite_write_lock(tmp_path: Path) -> None:
    """An executor polling an empty queue must not queue behind (or time out on) a writer."""
    url = f"sqlite:///{tmp_path / 'teeflow.db'}"
    Store.from_url(url).migrate()
    store = Store(make_engine(url, busy_timeout_ms=200))
    holder = make_engine(url)
    try:
        with write_engine(holder).begin() as connection:  # another writer holds the lock
            connection.execute(text("SELECT 1"))
            assert store.lease_next(executor_id="e", now=T0, lease_seconds=10) is None
    finally:
        holder.dispose()
        store.close()


def test_task_view_reads_the_task_its_approvals_and_inputs_at_once(members: Store) -> None:
    task = members.create_task(
        task_id="t" * 32, creator="alice",
        contract={"inputs": {"data": {"dataset_id": "d-1"}, "joint": {"joint": {}}}},
        contract_hash="c" * 64, participants=["alice", "bob"], now=T0,
    )  # fmt: skip
    members.add_approval(
        task_id=task.task_id, username="bob", decision="approve", signature="s",
        wrapped_keys={"data": "k"}, now=T0,
    )  # fmt: skip

    view = members.task_view(task.task_id)

    assert view is not None
    assert view[0] == members.get_task(task.task_id)
    assert (view[1], view[2]) == members.task_view_facts(task.task_id, ["d-1", ""])
    assert [a.username for a in view[1]] == ["bob"]
    assert members.task_view("missing") is None
