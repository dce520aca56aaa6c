"""One contract for the store, run against SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from teeflow.server.audit import event_to_dict, verify_chain
from teeflow.server.db import alembic_config, current_revision, upgrade
from teeflow.server.models import Base
from teeflow.server.routes.executors import _skip_for
from teeflow.server.store import AuditEntry, Conflict, ExecutorRecord, NotFound, Store, TaskRecord

T0 = datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def add_user(store: Store, username: str) -> None:
    store.create_user(username=username, password_hash="h", sign_pk="s", enc_pk="e", now=T0)


def add_task(store: Store, creator: str = "alice", *, at: int = 0, **kw: Any) -> TaskRecord:
    return store.create_task(
        task_id=kw.pop("task_id", new_id()),
        creator=creator,
        contract={"function": "f", "n": at},
        contract_hash="c" * 64,
        participants=kw.pop("participants", [creator, "bob"]),
        now=T0 + timedelta(seconds=at),
        **kw,
    )


def queue(store: Store, task: TaskRecord) -> None:
    moved = store.transition(task.task_id, from_states={"proposed"}, to="queued", now=T0)
    assert moved is not None


def run_threads(n: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)

    def start(i: int) -> Any:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(start, range(n)))


@pytest.fixture
def users(store: Store) -> Store:
    for name in ("alice", "bob", "carol"):
        add_user(store, name)
    return store


def test_schema_comes_from_migrations_and_matches_models(store: Store, store_url: str) -> None:
    with store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    assert diff == []
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None and current_revision(store.engine) == head
    store.migrate()  # idempotent
    upgrade(store_url)  # the URL form, as `teeflow` runs it at start-up


def test_users(store: Store) -> None:
    created = store.create_user(
        username="alice", password_hash="ph", sign_pk="spk", enc_pk="epk", now=T0
    )

    assert store.get_user("alice") == created
    assert created.created_at == T0 and created.created_at.tzinfo is not None
    assert store.get_user("nobody") is None
    with pytest.raises(Conflict):
        add_user(store, "alice")
    with pytest.raises(ValueError, match="timezone-aware"):
        store.create_user(
            username="x", password_hash="h", sign_pk="s", enc_pk="e", now=T0.replace(tzinfo=None)
        )


def test_timestamps_are_stored_as_utc(store: Store) -> None:
    local = T0.astimezone(timezone(timedelta(hours=8)))

    created = store.create_user(username="a", password_hash="h", sign_pk="s", enc_pk="e", now=local)

    assert created.created_at == T0 and created.created_at.utcoffset() == timedelta(0)


def test_tokens(users: Store) -> None:
    users.add_token(token_hash="t1", username="alice", expires_at=T0 + timedelta(hours=1))

    assert users.get_token("t1") == ("alice", T0 + timedelta(hours=1))
    assert users.get_token("unknown") is None
    found = users.user_for_token("t1")
    assert found is not None
    assert (found[0].username, found[1]) == ("alice", T0 + timedelta(hours=1))
    assert users.user_for_token("unknown") is None
    users.revoke_token("t1")
    assert users.get_token("t1") is None
    assert users.user_for_token("t1") is None
    users.revoke_token("unknown")  # no error
    with pytest.raises(Conflict):
        users.add_token(token_hash="t2", username="nobody", expires_at=T0)


def test_login_failures(store: Store) -> None:
    for minute in (0, 5, 10):
        store.record_login_failure(username="alice", now=T0 + timedelta(minutes=minute))
    store.record_login_failure(username="bob", now=T0)

    assert store.count_login_failures(username="alice", since=T0 + timedelta(minutes=5)) == 2
    assert store.count_login_failures(username="alice", since=T0) == 3
    store.clear_login_failures("alice")
    assert store.count_login_failures(username="alice", since=T0) == 0
    assert store.count_login_failures(username="bob", since=T0) == 1


def test_dataset_lifecycle(users: Store) -> None:
    created = users.create_dataset(
        dataset_id="d1", name="scans", kind="table", description="x", owner="alice", now=T0,
        meta={"rows": 3},
    )  # fmt: skip
    assert created.state == "pending" and created.blob_key is None and created.meta == {"rows": 3}

    ready = users.mark_dataset_ready("d1", ciphertext_sha256="a" * 64, size=2**40, blob_key="k/d1")

    assert (ready.state, ready.size, ready.blob_key) == ("ready", 2**40, "k/d1")
    assert users.get_dataset("d1") == ready
    with pytest.raises(Conflict):
        users.mark_dataset_ready("d1", ciphertext_sha256="b" * 64, size=1, blob_key="k")
    with pytest.raises(NotFound):
        users.mark_dataset_ready("nope", ciphertext_sha256="b" * 64, size=1, blob_key="k")
    with pytest.raises(Conflict):
        users.create_dataset(
            dataset_id="d1", name="n", kind="table", description="", owner="alice", now=T0
        )
    users.delete_dataset("d1")
    assert users.get_dataset("d1") is None
    with pytest.raises(NotFound):
        users.delete_dataset("d1")


def test_dataset_visibility(users: Store) -> None:
    task = add_task(users)
    for dataset_id, owner, joint in (("a1", "alice", None), ("b1", "bob", None)):
        users.create_dataset(
            dataset_id=dataset_id, name=dataset_id, kind="table", description="", owner=owner,
            now=T0, joint_owners=joint,
        )  # fmt: skip
    users.create_dataset(
        dataset_id="j1", name="joint", kind="model", description="", owner="alice", now=T0,
        produced_by_task=task.task_id, joint_owners=["alice", "bob"],
    )  # fmt: skip

    def ids(**kw: str) -> set[str]:
        return {d.dataset_id for d in users.list_datasets(**kw)}

    assert ids() == {"a1", "b1", "j1"}
    assert ids(owner="alice") == {"a1", "j1"}
    assert ids(visible_to="bob") == {"b1", "j1"}
    assert ids(visible_to="carol") == set()
    assert ids(owner="alice", visible_to="bob") == {"j1"}
    assert users.get_dataset("j1").joint_owners == ("alice", "bob")  # type: ignore[union-attr]


def test_functions_and_referenced_dataset(users: Store) -> None:
    users.create_dataset(
        dataset_id="src", name="code", kind="code", description="", owner="alice", now=T0
    )
    function = users.create_function(
        function_id="f1", name="train", owner="alice", description="d", code_sha256="c" * 64,
        sealed=True, source_dataset_id="src", spec={"inputs": ["x"]}, now=T0,
    )  # fmt: skip

    assert users.get_function("f1") == function
    assert users.get_function("nope") is None
    assert [f.function_id for f in users.list_functions()] == ["f1"]
    assert function.sealed and function.spec == {"inputs": ["x"]}
    with pytest.raises(Conflict):
        users.delete_dataset("src")  # still the function's source
    with pytest.raises(Conflict):
        users.create_function(
            function_id="f1", name="t", owner="alice", description="", code_sha256="c",
            sealed=False, source_dataset_id=None, spec={}, now=T0,
        )  # fmt: skip


def test_tasks_and_participants(users: Store) -> None:
    first = add_task(users, "alice", participants=["alice", "bob", "alice"])
    second = add_task(users, "carol", at=1, participants=["carol"])

    assert first.status == "proposed" and first.attempts == 0
    assert first.participants == ("alice", "bob")
    assert users.get_task(first.task_id) == first
    assert users.get_task("nope") is None
    assert [t.task_id for t in users.list_tasks(participant="bob")] == [first.task_id]
    assert [t.task_id for t in users.list_tasks(participant="carol")] == [second.task_id]
    with pytest.raises(Conflict):
        add_task(users, task_id=first.task_id)


def test_transition_is_compare_and_set(users: Store) -> None:
    task = add_task(users)
    later = T0 + timedelta(minutes=1)

    approved = users.transition(task.task_id, from_states={"proposed"}, to="approved", now=later)
    again = users.transition(task.task_id, from_states={"proposed"}, to="rejected", now=later)
    failed = users.transition(
        task.task_id, from_states={"approved", "queued"}, to="failed", now=later,
        failure_reason="boom", receipt={"r": 1},
    )  # fmt: skip

    assert approved is not None and approved.status == "approved" and approved.updated_at == later
    assert again is None
    assert failed is not None and failed.failure_reason == "boom" and failed.receipt == {"r": 1}
    assert users.transition("nope", from_states={"proposed"}, to="queued", now=T0) is None
    with pytest.raises(ValueError, match="unknown task states"):
        users.transition(task.task_id, from_states={"proposed"}, to="done", now=T0)
    with pytest.raises(TypeError):
        users.transition(task.task_id, from_states={"failed"}, to="queued", now=T0, status="x")


def test_concurrent_transitions_only_one_wins(users: Store) -> None:
    task = add_task(users)

    results = run_threads(
        8,
        lambda i: users.transition(
            task.task_id, from_states={"proposed"}, to="approved", now=T0,
            audit=AuditEntry(actor=f"t{i}", action="task.approved", subject=task.task_id),
        ),
    )  # fmt: skip

    assert sum(r is not None for r in results) == 1
    assert [e.action for e in users.list_audit()] == ["task.approved"]


def test_approvals_are_one_per_user(users: Store) -> None:
    task = add_task(users)
    entry = AuditEntry(actor="bob", action="task.approve", subject=task.task_id)

    users.add_approval(
        task_id=task.task_id, username="bob", decision="approve", signature="sig",
        wrapped_keys={"in": "wk"}, now=T0, audit=entry,
    )  # fmt: skip
    users.add_approval(
        task_id=task.task_id, username="alice", decision="reject", signature=None,
        wrapped_keys={}, now=T0,
    )  # fmt: skip

    with pytest.raises(Conflict):
        users.add_approval(
            task_id=task.task_id, username="bob", decision="reject", signature=None,
            wrapped_keys={}, now=T0, audit=entry,
        )  # fmt: skip
    with pytest.raises(NotFound):
        users.add_approval(
            task_id="nope", username="bob", decision="approve", signature="s",
            wrapped_keys={}, now=T0,
        )  # fmt: skip
    approvals = users.list_approvals(task.task_id)
    assert {(a.username, a.decision) for a in approvals} == {
        ("bob", "approve"),
        ("alice", "reject"),
    }
    assert next(a for a in approvals if a.username == "bob").wrapped_keys == {"in": "wk"}
    assert len(users.list_audit()) == 1  # the refused approval logged nothing


def _executor(tee: str, measurement: str) -> ExecutorRecord:
    return ExecutorRecord(
        executor_id="x", tee=tee, measurement=measurement, evidence={}, public_keys={},
        token_hash="h", registered_at=T0, last_seen_at=T0,
    )  # fmt: skip


def test_lease_goes_only_to_an_executor_of_the_contracts_enclave(users: Store) -> None:
    """In a mixed fleet a tdx executor never takes (and fails) a task approved for sgx."""

    def task_for(tee: str, at: int) -> TaskRecord:
        made = users.create_task(
            task_id=new_id(), creator="alice",
            contract={"executor": {"tee": tee, "measurement": tee * 4}, "n": at},
            contract_hash="c" * 64, participants=["alice", "bob"],
            now=T0 + timedelta(seconds=at),
        )  # fmt: skip
        queue(users, made)
        return made

    sgx_task, tdx_task = task_for("sgx", 0), task_for("tdx", 1)

    def lease(executor: str, tee: str, measurement: str) -> TaskRecord | None:
        skip = _skip_for(_executor(tee, measurement), sessions=True)
        return users.lease_next(executor_id=executor, now=T0, lease_seconds=30, skip=skip)

    tdx = lease("t", "tdx", "tdx" * 4)
    nothing = lease("t2", "tdx", "x")
    sgx = lease("s", "sgx", "sgx" * 4)

    assert tdx is not None and tdx.task_id == tdx_task.task_id
    assert nothing is None
    assert sgx is not None and sgx.task_id == sgx_task.task_id


def test_lease_picks_oldest_and_requeues_expired(users: Store) -> None:
    old, new = add_task(users, at=0), add_task(users, at=5)
    queue(users, new)
    queue(users, old)

    first = users.lease_next(executor_id="e1", now=T0, lease_seconds=30)
    second = users.lease_next(executor_id="e2", now=T0, lease_seconds=30)
    none = users.lease_next(executor_id="e3", now=T0 + timedelta(seconds=29), lease_seconds=30)
    retaken = users.lease_next(executor_id="e3", now=T0 + timedelta(seconds=30), lease_seconds=30)

    assert first is not None and first.task_id == old.task_id and first.status == "running"
    assert first.lease_owner == "e1" and first.lease_expires_at == T0 + timedelta(seconds=30)
    assert second is not None and second.task_id == new.task_id
    assert none is None
    assert retaken is not None and retaken.task_id == old.task_id
    assert (retaken.lease_owner, retaken.attempts) == ("e3", 2)
    assert not users.heartbeat(task_id=old.task_id, executor_id="e1", now=T0, lease_seconds=30)
    assert not users.finish(
        task_id=old.task_id, executor_id="e1", status="succeeded", receipt={}, failure_reason=None,
        now=T0,
    )  # fmt: skip


def test_lease_exclusive_under_concurrency(users: Store) -> None:
    tasks = [add_task(users, at=i) for i in range(50)]
    for task in tasks:
        queue(users, task)

    def drain(i: int) -> list[str]:
        got = []
        while (task := users.lease_next(executor_id=f"e{i}", now=T0, lease_seconds=60)) is not None:
            got.append(task.task_id)
        return got

    leased = [task_id for batch in run_threads(8, drain) for task_id in batch]

    assert Counter(leased) == Counter(t.task_id for t in tasks)
    assert all(t.attempts == 1 for t in (users.get_task(t.task_id) for t in tasks) if t)


def test_lease_passing_over_tasks_stays_exclusive_under_concurrency(users: Store) -> None:
    tasks = [add_task(users, at=i) for i in range(40)]
    for task in tasks:
        queue(users, task)
    odd = {t.task_id for t in tasks if t.contract["n"] % 2}

    def odd_only(contract: Any) -> bool:
        return contract["n"] % 2 == 0

    def drain(i: int) -> list[str]:
        skip = odd_only if i % 2 else None
        got = []
        while task := users.lease_next(executor_id=f"e{i}", now=T0, lease_seconds=60, skip=skip):
            assert skip is None or task.task_id in odd
            got.append(task.task_id)
        return got

    leased = [task_id for batch in run_threads(6, drain) for task_id in batch]

    assert Counter(leased) == Counter(t.task_id for t in tasks)


def test_heartbeat_and_finish_only_by_lease_owner(users: Store) -> None:
    task = add_task(users)
    queue(users, task)
    users.lease_next(executor_id="e1", now=T0, lease_seconds=10)
    later = T0 + timedelta(seconds=5)

    assert not users.heartbeat(task_id=task.task_id, executor_id="e2", now=later, lease_seconds=10)
    assert users.heartbeat(task_id=task.task_id, executor_id="e1", now=later, lease_seconds=10)
    assert users.get_task(task.task_id).lease_expires_at == later + timedelta(seconds=10)  # type: ignore[union-attr]
    assert not users.finish(
        task_id=task.task_id, executor_id="e2", status="failed", receipt=None,
        failure_reason="x", now=later,
    )  # fmt: skip
    assert users.finish(
        task_id=task.task_id, executor_id="e1", status="succeeded", receipt={"sig": "r"},
        failure_reason=None, now=later, audit=AuditEntry("e1", "task.finish", task.task_id),
    )  # fmt: skip
    done = users.get_task(task.task_id)
    assert done is not None and done.status == "succeeded" and done.receipt == {"sig": "r"}
    assert not users.heartbeat(task_id=task.task_id, executor_id="e1", now=later, lease_seconds=1)
    assert [e.action for e in users.list_audit()] == ["task.finish"]


def test_canceled_task_stops_its_executor(users: Store) -> None:
    task = add_task(users)
    queue(users, task)
    users.lease_next(executor_id="e1", now=T0, lease_seconds=10)

    users.transition(task.task_id, from_states={"running"}, to="canceled", now=T0)

    assert not users.heartbeat(task_id=task.task_id, executor_id="e1", now=T0, lease_seconds=10)
    assert users.lease_next(executor_id="e2", now=T0 + timedelta(hours=1), lease_seconds=10) is None


def test_lease_audit_names_the_task(users: Store) -> None:
    task = add_task(users)
    queue(users, task)

    users.lease_next(
        executor_id="e1", now=T0, lease_seconds=10,
        audit=AuditEntry(actor="executor:e1", action="task.lease", subject=""),
    )  # fmt: skip

    (entry,) = users.list_audit()
    assert (entry.subject, entry.details) == (task.task_id, {"attempt": 1})


def test_outputs(users: Store) -> None:
    task = add_task(users)

    users.add_output(
        task_id=task.task_id, slot="model", blob_key="o/m", ciphertext_sha256="a" * 64, size=7,
        wrapped_keys={"alice": "wk"}, joint_owners=["alice", "bob"], dataset_id=None,
    )  # fmt: skip
    users.add_output(
        task_id=task.task_id, slot="metrics", blob_key="o/x", ciphertext_sha256="b" * 64, size=1,
        wrapped_keys={"bob": "wk2"}, joint_owners=None, dataset_id=None,
    )  # fmt: skip

    outputs = users.list_outputs(task.task_id)
    assert [o.slot for o in outputs] == ["metrics", "model"]
    assert outputs[1].joint_owners == ("alice", "bob") and outputs[0].joint_owners is None
    with pytest.raises(Conflict):
        users.add_output(
            task_id=task.task_id, slot="model", blob_key="o/m2", ciphertext_sha256="c", size=1,
            wrapped_keys={}, joint_owners=None, dataset_id=None,
        )  # fmt: skip


def test_blake3_content_digests_fit_datasets_and_outputs(users: Store) -> None:
    # "blake3:" + 64 hex is 71 characters: PostgreSQL refused it before migration 0004.
    digest = "blake3:" + "d" * 64
    users.create_dataset(
        dataset_id="d1", name="scans", kind="table", description="", owner="alice", now=T0
    )
    task = add_task(users)

    ready = users.mark_dataset_ready("d1", ciphertext_sha256=digest, size=1, blob_key="k/d1")
    users.add_output(
        task_id=task.task_id, slot="model", blob_key="o/m", ciphertext_sha256=digest, size=7,
        wrapped_keys={"alice": "wk"}, joint_owners=None, dataset_id=None,
    )  # fmt: skip

    assert ready.ciphertext_sha256 == digest
    assert users.list_outputs(task.task_id)[0].ciphertext_sha256 == digest


def test_events_are_sequenced_per_task_and_filtered_by_recipient(users: Store) -> None:
    task, other = add_task(users), add_task(users, at=1)

    seqs = [
        users.add_event(task_id=task.task_id, recipient=r, kind="progress", payload=p, now=T0)
        for r, p in (("alice", "c1"), ("bob", "c2"), ("alice", "c3"))
    ]
    other_seq = users.add_event(
        task_id=other.task_id, recipient="alice", kind="k", payload="p", now=T0
    )

    assert seqs == [1, 2, 3] and other_seq == 1
    alice = users.list_events(task_id=task.task_id, recipient="alice")
    assert [(e.seq, e.payload) for e in alice] == [(1, "c1"), (3, "c3")]
    assert [
        e.seq for e in users.list_events(task_id=task.task_id, recipient="alice", after_seq=1)
    ] == [3]
    with pytest.raises(NotFound):
        users.add_event(task_id="nope", recipient="a", kind="k", payload="p", now=T0)


def test_checkpoints_never_go_back(users: Store) -> None:
    task = add_task(users)
    assert users.get_checkpoint(task.task_id) is None

    users.put_checkpoint(task_id=task.task_id, blob_key="c/1", epoch=1, now=T0)
    users.put_checkpoint(task_id=task.task_id, blob_key="c/3", epoch=3, now=T0)

    assert users.get_checkpoint(task.task_id) == ("c/3", 3)
    with pytest.raises(Conflict):
        users.put_checkpoint(task_id=task.task_id, blob_key="c/2", epoch=2, now=T0)
    assert users.get_checkpoint(task.task_id) == ("c/3", 3)


def test_executors(store: Store) -> None:
    registered = store.register_executor(
        executor_id="e1", tee="sim", measurement="m" * 64, evidence={"quote": "q"},
        public_keys={"enc": "pk"}, token_hash="th", now=T0,
    )  # fmt: skip
    store.touch_executor("e1", T0 + timedelta(minutes=1))

    assert store.get_executor("e1") is not None
    assert store.executor_by_token("th") == store.get_executor("e1")
    assert store.executor_by_token("other") is None
    assert [e.last_seen_at for e in store.list_executors()] == [T0 + timedelta(minutes=1)]
    assert registered.evidence == {"quote": "q"}
    with pytest.raises(Conflict):
        store.register_executor(
            executor_id="e2", tee="sim", measurement="m", evidence={}, public_keys={},
            token_hash="th", now=T0,
        )  # fmt: skip
    with pytest.raises(NotFound):
        store.touch_executor("nope", T0)


def test_audit_chain_survives_concurrent_appends(users: Store) -> None:
    def append(i: int) -> None:
        for j in range(10):
            users.append_audit(
                actor=f"a{i}", action="x", subject=str(j), details={"i": i, "j": j}, now=T0
            )

    run_threads(8, append)
    events = users.list_audit()

    assert [e.seq for e in events] == list(range(1, 81))
    verify_chain(event_to_dict(e) for e in events)
    head = users.audit_head()
    assert head is not None and head.seq == 80
    verify_chain((event_to_dict(e) for e in events), head=head.hash)
    assert [e.seq for e in users.list_audit(after_seq=78)] == [79, 80]


def test_state_changes_and_audit_commit_together(users: Store) -> None:
    entry = AuditEntry(actor="alice", action="dataset.create", subject="d1", details={"k": 1})

    users.create_dataset(
        dataset_id="d1", name="n", kind="table", description="", owner="alice", now=T0,
        audit=entry,
    )  # fmt: skip
    with pytest.raises(Conflict):
        users.create_dataset(
            dataset_id="d1", name="n", kind="table", description="", owner="alice", now=T0,
            audit=entry,
        )  # fmt: skip

    assert [(e.seq, e.action, e.details) for e in users.list_audit()] == [
        (1, "dataset.create", {"k": 1})
    ]
