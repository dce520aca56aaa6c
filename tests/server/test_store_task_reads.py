"""The member routes' reads (participant_task_status, task_outputs) and transition with the
participants a caller already read, against SQLite and PostgreSQL (see conftest.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from teeflow.server.store import NewOutput, Store, TaskRecord

T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def _task(store: Store) -> TaskRecord:
    return store.create_task(
        task_id=uuid.uuid4().hex,
        creator="alice",
        contract={"function": "f"},
        contract_hash="c" * 64,
        participants=["bob", "alice"],
        now=T0,
    )


def test_a_tasks_status_is_shown_to_its_participants_only(members: Store) -> None:
    task = _task(members)
    members.create_user(username="carol", password_hash="h", sign_pk="s", enc_pk="e", now=T0)

    assert members.participant_task_status(task.task_id, "bob") == "proposed"
    assert members.participant_task_status(task.task_id, "carol") is None
    assert members.participant_task_status("no-such-task", "alice") is None


def test_a_transition_given_the_participants_answers_as_one_that_reads_them(
    members: Store,
) -> None:
    first, second = _task(members), _task(members)
    fields = {"run_authorisation": {"body": {"n": 1}}, "failure_reason": "r"}

    given = members.transition(
        first.task_id,
        from_states={"proposed", "approved"},
        to="queued",
        now=T0,
        participants=first.participants,
        **fields,
    )
    read = members.transition(
        second.task_id, from_states={"proposed", "approved"}, to="queued", now=T0, **fields
    )
    missed = members.transition(
        first.task_id, from_states={"proposed"}, to="queued", now=T0, participants=("x",)
    )

    assert given is not None and read is not None and missed is None
    assert given.participants == read.participants == ("bob", "alice")
    assert given.run_authorisation == read.run_authorisation == {"body": {"n": 1}}
    assert (given.status, given.failure_reason) == (read.status, read.failure_reason)
    assert members.get_task(first.task_id) == given


def test_a_task_is_read_with_its_outputs(members: Store) -> None:
    task = _task(members)
    assert members.transition(task.task_id, from_states={"proposed"}, to="queued", now=T0)
    assert members.lease_next(executor_id="x1", now=T0, lease_seconds=60) is not None
    output = NewOutput(
        slot="data",
        blob_key=f"outputs/{task.task_id}/data",
        ciphertext_sha256="b" * 64,
        size=3,
        wrapped_keys={"bob": "w"},
    )
    assert members.finish(
        task_id=task.task_id,
        executor_id="x1",
        status="succeeded",
        receipt={"r": 1},
        failure_reason=None,
        now=T0,
        outputs=[output],
    )

    found = members.task_outputs(task.task_id)

    assert found is not None
    assert found[0] == members.get_task(task.task_id)
    assert found[1] == members.list_outputs(task.task_id)
    assert [(o.slot, o.wrapped_keys) for o in found[1]] == [("data", {"bob": "w"})]
    assert members.task_outputs("no-such-task") is None
