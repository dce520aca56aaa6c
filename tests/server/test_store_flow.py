"""The task path's one-transaction methods (approve_task, lease_facts, finish with outputs),
against SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from teeflow.server.audit import event_to_dict, verify_chain
from teeflow.server.store import AuditEntry, Conflict, NewOutput, NotFound, Store, TaskRecord

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def new_id() -> str:
    return uuid.uuid4().hex


def add_task(store: Store) -> TaskRecord:
    return store.create_task(
        task_id=new_id(),
        creator="alice",
        contract={"function": "f"},
        contract_hash="c" * 64,
        participants=["alice", "bob"],
        now=T0,
    )


def queue(store: Store, task: TaskRecord) -> None:
    assert store.transition(task.task_id, from_states={"proposed"}, to="queued", now=T0)


@pytest.fixture
def users(store: Store) -> Store:
    for name in ("alice", "bob"):
        store.create_user(username=name, password_hash="h", sign_pk="s", enc_pk="e", now=T0)
    return store


def _entry(actor: str, action: str, subject: str) -> AuditEntry:
    return AuditEntry(actor=actor, action=action, subject=subject, details={})


def _approve(store: Store, task_id: str, username: str) -> str:
    return store.approve_task(
        task_id=task_id,
        username=username,
        signature=f"sig-{username}",
        wrapped_keys={"data": "k"},
        now=T0,
        audit=_entry(username, "task.approve", task_id),
        approved_audit=_entry("control-plane", "task.approved", task_id),
        queued_audit=_entry("control-plane", "task.queued", task_id),
    ).status


def test_last_approval_moves_the_task_to_approved_in_the_same_transaction(users: Store) -> None:
    task = add_task(users)

    assert _approve(users, task.task_id, "alice") == "proposed"
    assert _approve(users, task.task_id, "bob") == "approved"
    actions = [(e.actor, e.action) for e in users.list_audit()]
    assert actions[-3:] == [
        ("alice", "task.approve"),
        ("bob", "task.approve"),
        ("control-plane", "task.approved"),
    ]
    verify_chain(event_to_dict(e) for e in users.list_audit())  # raises if the chain broke
    assert {a.username for a in users.list_approvals(task.task_id)} == {"alice", "bob"}


def test_second_approval_by_one_user_is_a_conflict_and_changes_nothing(users: Store) -> None:
    task = add_task(users)
    _approve(users, task.task_id, "alice")
    before = len(users.list_audit())

    with pytest.raises(Conflict):
        _approve(users, task.task_id, "alice")
    with pytest.raises(NotFound):
        _approve(users, new_id(), "alice")

    assert len(users.list_audit()) == before
    assert users.get_task(task.task_id).status == "proposed"  # type: ignore[union-attr]


def _run_authorisation(issued_at: datetime, start_within_s: int) -> dict[str, Any]:
    # The store reads only the window (issued_at, start_within_s); the routes and the enclave
    # check the signature.
    body = {"issued_at": issued_at.isoformat(), "start_within_s": start_within_s}
    return {"body": body, "signature": "s"}


def _approve_with_run(store: Store, task_id: str, run: dict[str, Any]) -> str:
    return store.approve_task(
        task_id=task_id,
        username="alice",
        signature="sig-alice",
        wrapped_keys={},
        now=T0,
        audit=_entry("alice", "task.approve", task_id),
        approved_audit=_entry("control-plane", "task.approved", task_id),
        run_authorisation=run,
        queued_audit=_entry("control-plane", "task.queued", task_id),
    ).status


def test_a_run_authorisation_in_an_approval_queues_the_task_with_the_last_one(
    users: Store,
) -> None:
    task = add_task(users)
    run = _run_authorisation(T0, 600)

    assert _approve_with_run(users, task.task_id, run) == "proposed"
    assert _approve(users, task.task_id, "bob") == "queued"
    after = users.get_task(task.task_id)
    assert after is not None and after.run_authorisation == run
    actions = [e.action for e in users.list_audit()]
    assert actions[-3:] == ["task.approve", "task.approved", "task.queued"]
    verify_chain(event_to_dict(e) for e in users.list_audit())


def test_a_run_authorisation_past_its_window_leaves_the_task_approved(users: Store) -> None:
    task = add_task(users)
    stale = _run_authorisation(T0 - timedelta(hours=1), 600)

    _approve_with_run(users, task.task_id, stale)

    assert _approve(users, task.task_id, "bob") == "approved"  # the creator runs it again
    assert users.list_audit()[-1].action == "task.approved"


def test_lease_facts_reads_approvals_datasets_and_checkpoint(users: Store) -> None:
    task = add_task(users)
    _approve(users, task.task_id, "alice")
    dataset = new_id()
    users.create_dataset(
        dataset_id=dataset, name="d", kind="table", description="", owner="alice", now=T0
    )
    users.mark_dataset_ready(dataset, ciphertext_sha256="a" * 64, size=12, blob_key="blobs/d")

    facts = users.lease_facts(task.task_id, [dataset, new_id()])

    assert [a.username for a in facts.approvals] == ["alice"]
    assert facts.datasets == {dataset: ("blobs/d", 12)}
    assert facts.has_checkpoint is False
    users.put_checkpoint(task_id=task.task_id, blob_key="c", epoch=1, now=T0)
    assert users.lease_facts(task.task_id, []).has_checkpoint is True


def test_lease_facts_of_a_batch_gives_each_task_its_own(users: Store) -> None:
    approved, unapproved, checkpointed = add_task(users), add_task(users), add_task(users)
    _approve(users, approved.task_id, "bob")
    _approve(users, approved.task_id, "alice")
    _approve(users, checkpointed.task_id, "alice")
    users.put_checkpoint(task_id=checkpointed.task_id, blob_key="c", epoch=1, now=T0)
    datasets = [new_id(), new_id()]
    for n, dataset in enumerate(datasets):
        users.create_dataset(
            dataset_id=dataset, name="d", kind="table", description="", owner="alice", now=T0
        )
        users.mark_dataset_ready(
            dataset, ciphertext_sha256="a" * 64, size=10 + n, blob_key=f"blobs/{n}"
        )
    wanted = {
        approved.task_id: [datasets[0], new_id()],
        unapproved.task_id: [datasets[1]],
        checkpointed.task_id: [*datasets, datasets[0]],
    }

    batch = users.lease_facts_of(wanted)

    # The same facts as one lease_facts read per task: nothing of one task leaks into another's.
    assert batch == {task_id: users.lease_facts(task_id, ids) for task_id, ids in wanted.items()}
    assert [a.username for a in batch[approved.task_id].approvals] == ["alice", "bob"]
    assert batch[unapproved.task_id].approvals == []
    assert batch[approved.task_id].datasets == {datasets[0]: ("blobs/0", 10)}
    assert batch[unapproved.task_id].datasets == {datasets[1]: ("blobs/1", 11)}
    assert {t for t, f in batch.items() if f.has_checkpoint} == {checkpointed.task_id}
    assert users.lease_facts_of({}) == {}


def test_tasks_by_id_reads_a_batch_of_tasks_with_their_participants(users: Store) -> None:
    first, second = add_task(users), add_task(users)

    found = users.tasks_by_id([second.task_id, first.task_id, new_id(), first.task_id])

    assert found == {first.task_id: users.get_task(first.task_id), second.task_id: second}
    assert found[first.task_id].participants == ("alice", "bob")
    assert users.tasks_by_id([]) == {}


def _output(slot: str, *, joint: list[str] | None = None) -> NewOutput:
    return NewOutput(
        slot=slot,
        blob_key=f"outputs/{slot}",
        ciphertext_sha256="b" * 64,
        size=7,
        wrapped_keys={"alice": "w"},
        joint_owners=joint,
        dataset_id=new_id() if joint else None,
        dataset_name=f"{slot} out",
        meta={"slot": slot},
    )


def _finish(store: Store, task_id: str, executor: str, outputs: list[NewOutput]) -> bool:
    return store.finish(
        task_id=task_id,
        executor_id=executor,
        status="succeeded",
        receipt={"r": 1},
        failure_reason=None,
        now=T0,
        audit=_entry(f"executor:{executor}", "task.succeeded", task_id),
        outputs=outputs,
    )


def test_finish_records_outputs_and_joint_datasets_with_the_result(users: Store) -> None:
    task = add_task(users)
    queue(users, task)
    leased = users.lease_next(executor_id="x1", now=T0, lease_seconds=60)
    assert leased is not None

    assert _finish(
        users, task.task_id, "x1", [_output("data"), _output("m", joint=["bob", "alice"])]
    )

    outputs = {o.slot: o for o in users.list_outputs(task.task_id)}
    assert outputs["data"].size == 7 and outputs["data"].dataset_id is None
    joint = users.get_dataset(outputs["m"].dataset_id or "")
    assert joint is not None and joint.state == "ready" and joint.owner == "bob"
    assert joint.produced_by_task == task.task_id and joint.blob_key == "outputs/m"
    assert users.get_task(task.task_id).status == "succeeded"  # type: ignore[union-attr]


def test_finish_without_the_lease_records_no_output(users: Store) -> None:
    task = add_task(users)
    queue(users, task)
    assert users.lease_next(executor_id="x1", now=T0, lease_seconds=60) is not None

    assert not _finish(users, task.task_id, "someone-else", [_output("data")])

    assert users.list_outputs(task.task_id) == []
    assert users.get_task(task.task_id).status == "running"  # type: ignore[union-attr]
