"""The store queries behind the member limits (issue 17), on SQLite and PostgreSQL: sign-in
failures by account and source, task counts and filters, storage used, dataset deletion, and a
lease that passes over inference sessions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from teeflow.server.store import NotFound, Store, TaskRecord

T0 = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
OPEN = frozenset({"proposed", "approved", "queued", "running"})


def _users(store: Store, *names: str) -> None:
    for name in names:
        store.create_user(username=name, password_hash="h", sign_pk="s", enc_pk="e", now=T0)


def _task(
    store: Store, creator: str, participants: list[str], *, at: int = 0, **contract: Any
) -> TaskRecord:
    task_id = uuid.uuid4().hex
    return store.create_task(
        task_id=task_id,
        creator=creator,
        contract={"task_id": task_id, "n": at, **contract},
        contract_hash="c" * 64,
        participants=participants,
        now=T0 + timedelta(seconds=at),
    )


def _dataset(store: Store, owner: str, size: int) -> str:
    dataset_id = uuid.uuid4().hex
    store.create_dataset(
        dataset_id=dataset_id, name="d", kind="table", description="", owner=owner, now=T0
    )
    store.mark_dataset_ready(
        dataset_id, ciphertext_sha256="a" * 64, size=size, blob_key=f"datasets/{dataset_id}"
    )
    return dataset_id


def test_login_failures_by_account_and_source(store: Store) -> None:
    for minute, (user, source) in enumerate(
        [("bob", "a"), ("bob", "a"), ("bob", "b"), ("carol", "a")]
    ):
        store.record_login_failure(username=user, source=source, now=T0 + timedelta(minutes=minute))

    pair = store.login_failures(since=T0, username="bob", source="a")
    from_a = store.login_failures(since=T0, source="a")
    bob = store.login_failures(since=T0 + timedelta(minutes=1), username="bob")
    store.clear_login_failures("bob", source="a")

    assert pair == (2, T0 + timedelta(minutes=1))
    assert from_a == (3, T0 + timedelta(minutes=3))
    assert bob[0] == 2 and bob[1] == T0 + timedelta(minutes=2)
    assert store.login_failures(since=T0, username="bob") == (1, T0 + timedelta(minutes=2))
    assert store.login_failures(since=T0, username="nobody") == (0, None)


def test_task_counts_filters_and_pages(store: Store) -> None:
    _users(store, "alice", "bob", "mallory")
    own = _task(store, "bob", ["bob"], at=0)
    flood = [_task(store, "mallory", ["mallory", "bob"], at=n + 1) for n in range(3)]
    store.transition(flood[0].task_id, from_states={"proposed"}, to="canceled", now=T0)

    assert store.count_tasks(creator="mallory", statuses=OPEN) == 2
    assert store.count_tasks(creator="mallory", statuses=OPEN, participant="bob") == 2
    assert store.count_tasks(creator="mallory", statuses=OPEN, participant="alice") == 0
    assert [t.task_id for t in store.list_tasks(participant="bob", role="creator")] == [own.task_id]
    invited = store.list_tasks(participant="bob", role="invited", status="proposed")
    assert [t.task_id for t in invited] == [t.task_id for t in flood[1:]]
    page = store.list_tasks(participant="bob", limit=2, offset=1)
    assert [t.task_id for t in page] == [t.task_id for t in flood[:2]]


def test_storage_used_and_deletion(store: Store) -> None:
    _users(store, "alice", "bob")
    first, second = _dataset(store, "alice", 10), _dataset(store, "alice", 32)
    _dataset(store, "bob", 1000)

    used = store.storage_used("alice")
    blob = store.mark_dataset_deleted(first, now=T0)

    assert used == 42 and blob == f"datasets/{first}"
    assert store.storage_used("alice") == 32
    deleted = store.get_dataset(first)
    assert deleted is not None and deleted.state == "deleted" and deleted.blob_key is None
    assert store.mark_dataset_deleted(first, now=T0) is None  # already gone
    with pytest.raises(NotFound):
        store.mark_dataset_deleted("missing", now=T0)
    assert store.get_dataset(second) is not None


def test_tasks_using_a_dataset(store: Store) -> None:
    _users(store, "alice")
    uses = _task(store, "alice", ["alice"], inputs={"data": {"dataset_id": "d-1"}})
    _task(store, "alice", ["alice"], inputs={"data": {"dataset_id": "d-2"}})

    assert store.tasks_using("d-1", statuses=OPEN) == [uses.task_id]
    store.transition(uses.task_id, from_states={"proposed"}, to="canceled", now=T0)
    assert store.tasks_using("d-1", statuses=OPEN) == []


def test_a_lease_can_pass_over_sessions(store: Store) -> None:
    _users(store, "alice")
    session = _task(store, "alice", ["alice"], at=0, kind="session")
    batch = _task(store, "alice", ["alice"], at=1, kind="batch")
    for task in (session, batch):
        store.transition(task.task_id, from_states={"proposed"}, to="queued", now=T0)

    def is_session(contract: Any) -> bool:
        return contract.get("kind") == "session"

    first = store.lease_next(executor_id="e1", now=T0, lease_seconds=10, skip=is_session)
    none_left = store.lease_next(executor_id="e1", now=T0, lease_seconds=10, skip=is_session)
    then = store.lease_next(executor_id="e2", now=T0, lease_seconds=10)

    assert first is not None and first.task_id == batch.task_id
    assert none_left is None
    assert then is not None and then.task_id == session.task_id
