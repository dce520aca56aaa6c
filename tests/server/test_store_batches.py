"""A lease batch and a finish batch are each one store transaction (store/_lease.py), against
SQLite and PostgreSQL (see conftest.py): each task is still its own compare-and-set with its own
audit entry in one unbroken chain, a batch holds at most one task ``one_of`` picks, and a refused
finish in a batch records nothing of itself and leaves the others recorded."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from test_store_lease_path import T0, add_task, queue

from teeflow.server.audit import AuditEntry, event_to_dict, verify_chain
from teeflow.server.db import make_engine
from teeflow.server.store import Conflict, Finishing, NewOutput, Store


def _queued(store: Store, count: int) -> list[str]:
    ids = []
    for at in range(count):
        task = add_task(store, at=at)
        queue(store, task)
        ids.append(task.task_id)
    return ids


def _lease_audit() -> AuditEntry:
    return AuditEntry(actor="executor:e", action="task.lease", subject="", details={})


def test_a_lease_batch_takes_the_oldest_each_with_its_audit_entry(members: Store) -> None:
    ids = _queued(members, 5)

    first = members.lease_batch(
        executor_id="e", now=T0, lease_seconds=60, limit=3, audit=_lease_audit()
    )
    rest = members.lease_batch(executor_id="f", now=T0, lease_seconds=60, limit=16)

    assert [t.task_id for t in first] == ids[:3]
    assert [t.task_id for t in rest] == ids[3:]
    assert {t.status for t in first + rest} == {"running"}
    assert [t.lease_owner for t in first] == ["e"] * 3
    leases = [e for e in members.list_audit() if e.action == "task.lease"]
    assert [(e.subject, e.details["attempt"]) for e in leases] == [(i, 1) for i in ids[:3]]
    verify_chain(map(event_to_dict, members.list_audit()))
    assert members.lease_batch(executor_id="e", now=T0, lease_seconds=60, limit=4) == []


def test_a_lease_batch_holds_at_most_one_task_that_one_of_picks(members: Store) -> None:
    ids = _queued(members, 4)

    def even(contract: Mapping[str, Any]) -> bool:
        return contract["n"] % 2 == 0  # tasks 0 and 2

    batch = members.lease_batch(executor_id="e", now=T0, lease_seconds=60, limit=4, one_of=even)

    assert [t.task_id for t in batch] == [ids[0], ids[1], ids[3]]
    assert members.get_task(ids[2]).status == "queued"  # type: ignore[union-attr]


def _output(task_id: str, slot: str) -> NewOutput:
    return NewOutput(
        slot=slot,
        blob_key=f"outputs/{task_id}/{slot}",
        ciphertext_sha256="b" * 64,
        size=7,
        wrapped_keys={"alice": "w"},
    )


def _finish(task_id: str, *outputs: NewOutput, owner: str = "e") -> Finishing:
    return Finishing(
        task_id=task_id,
        executor_id=owner,
        status="succeeded",
        receipt={"r": task_id},
        failure_reason=None,
        audit=AuditEntry(actor=f"executor:{owner}", action="task.succeeded", subject=task_id),
        outputs=outputs,
    )


def test_a_refused_finish_in_a_batch_records_nothing_and_the_others_are_recorded(
    members: Store,
) -> None:
    ok, clash, not_held, also_ok = _queued(members, 4)
    members.lease_batch(executor_id="e", now=T0, lease_seconds=60, limit=4)
    twice = _output(clash, "data")  # the same slot twice: the second insert violates the key

    done = members.finish_batch(
        [
            _finish(ok, _output(ok, "data")),
            _finish(clash, twice, twice),
            _finish(not_held, owner="someone-else"),
            _finish(also_ok, _output(also_ok, "data")),
        ],
        now=T0,
    )

    assert done[0] is True and done[3] is True and done[2] is False
    assert isinstance(done[1], Conflict)
    status = {i: members.get_task(i).status for i in (ok, clash, not_held, also_ok)}  # type: ignore[union-attr]
    assert status == {ok: "succeeded", clash: "running", not_held: "running", also_ok: "succeeded"}
    assert members.list_outputs(clash) == []
    assert [o.slot for o in members.list_outputs(also_ok)] == ["data"]
    finished = [e.subject for e in members.list_audit() if e.action == "task.succeeded"]
    assert finished == [ok, also_ok]
    verify_chain(map(event_to_dict, members.list_audit()))


def test_writers_of_one_process_queue_without_sqlite_busy_waits(tmp_path: Path) -> None:
    """With no busy timeout at all, SQLite refuses a second writer at once ("database is
    locked"); the store's writers of one process take turns before they ask SQLite, so none is
    refused and none sleeps in SQLite's busy handler (which wakes in 1-100 ms steps)."""
    url = f"sqlite:///{tmp_path / 'turns.db'}"
    Store.from_url(url).migrate()
    store = Store(make_engine(url, busy_timeout_ms=0))
    try:

        def append(worker: int) -> None:
            for n in range(25):
                store.append_audit(
                    actor=f"w{worker}", action="t.write", subject=str(n), details={}, now=T0
                )

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(append, range(8)))  # re-raises a refused write

        entries = store.list_audit()
        assert len(entries) == 8 * 25
        verify_chain(map(event_to_dict, entries))
    finally:
        store.close()
