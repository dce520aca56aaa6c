"""The member's task routes read each fact once: the run and the last approval do not read the
task's participants again after checking them, a woken long-poll reads only the status until the
task has ended, and a small output kept in the database is one read to download. Every answer
stays what it was."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from sqlalchemy import Engine, event

from teeflow.crypto import b64e
from teeflow.server.app import Platform, utcnow
from teeflow.server.notify import task_key

from ._asgi import AppClient
from .conftest import Api, Member, approve, propose_echo, run_body, upload_dataset


@contextmanager
def statements(*, thread: int | None = None) -> Iterator[list[str]]:
    """Every SQL statement any engine runs meanwhile (only ``thread``'s if given), in order."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, sql: str, *_: Any) -> None:
        if thread is None or threading.get_ident() != thread:
            seen.append(" ".join(sql.split()))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


def reading(seen: list[str], table: str) -> list[str]:
    return [sql for sql in seen if sql.startswith("SELECT") and f"FROM {table} " in f"{sql} "]


def _approved(member: Member) -> dict[str, Any]:
    """An approved echo task of ``member`` alone (an executor registered before)."""
    dataset = upload_dataset(member, b"TFSEAL ciphertext stand-in")
    task = propose_echo(member, dataset["id"])
    approve(member, task)
    return task


def _platform(api: Api) -> Platform:
    platform: Platform = api.app.state.platform
    return platform


def test_run_reads_the_participants_it_checks_once(api: Api) -> None:
    alice = api.member("alice")
    api.register_executor()
    task = _approved(alice)

    with statements() as seen:
        ran = alice.http.post(f"/v1/tasks/{task['id']}/run", json=run_body(alice, task))

    assert ran.status_code == 200, ran.text
    assert ran.json()["status"] == "queued" and ran.json()["pending"] == []
    assert len(reading(seen, "task_participants")) == 1


def test_the_last_approval_reads_the_participants_it_checks_once(api: Api) -> None:
    alice = api.member("alice")
    api.register_executor()
    task = propose_echo(alice, upload_dataset(alice, b"TFSEAL ciphertext stand-in")["id"])

    with statements() as seen:
        approved = approve(alice, task)

    assert approved["status"] == "approved" and approved["approvals"] == {"alice": "approve"}
    assert len(reading(seen, "task_participants")) == 1


def test_a_woken_long_poll_reads_the_status_alone_until_the_task_ends(api: Api) -> None:
    alice = api.member("alice")
    api.register_executor()
    task = _approved(alice)
    assert alice.http.post(f"/v1/tasks/{task['id']}/run", json=run_body(alice, task)).is_success
    store, notifier = _platform(api).store, _platform(api).notifier
    answer: list[httpx.Response] = []

    def long_poll() -> None:
        with AppClient(api.app, token=alice.token) as client:
            params = {"wait": 20, "until_done": "true"}
            answer.append(client.get(f"/v1/tasks/{task['id']}", params=params))

    with statements(thread=threading.get_ident()) as seen:  # the long-poll's, not this thread's
        poller = threading.Thread(target=long_poll)
        poller.start()
        _wait_until(lambda: reading(seen, "approvals"), poller)  # its first view is read
        store.transition(task["id"], from_states={"queued"}, to="running", now=utcnow())
        checked = len(seen)
        notifier.notify(task_key(task["id"]))
        _wait_until(lambda: len(seen) > checked, poller)  # woken, it checks again
        store.transition(task["id"], from_states={"running"}, to="succeeded", now=utcnow())
        notifier.notify(task_key(task["id"]))
        poller.join(timeout=60)

    assert [response.json()["status"] for response in answer] == ["succeeded"]
    # The first check and the answer build the view; the check woken in between does not.
    assert len(reading(seen, "approvals")) == 2


def _wait_until(condition: Any, poller: threading.Thread) -> None:
    while not condition():
        assert poller.is_alive(), "the long-poll ended early"
        poller.join(timeout=0.01)


def test_a_small_output_is_one_read_to_download(api: Api) -> None:
    alice = api.member("alice")
    token = api.register_executor()
    task = _approved(alice)
    assert alice.http.post(f"/v1/tasks/{task['id']}/run", json=run_body(alice, task)).is_success
    ciphertext = b"TFSEAL sealed output stand-in"
    output = {
        "ciphertext_sha256": hashlib.sha256(ciphertext).hexdigest(),
        "wrapped_keys": {"alice": "AA=="},
        "content": b64e(ciphertext),  # small: kept in the row_blobs table
    }
    finish = {"task_id": task["id"], "status": "succeeded", "receipt": {}, "outputs": {}}
    with AppClient(api.app, token=token) as executor:
        assert executor.post("/v1/executor/leases").json()["leases"]
        finished = executor.post(
            "/v1/executor/finishes",
            json={"finishes": [{**finish, "outputs": {"data": output}}]},
        )
    assert finished.status_code == 200, finished.text

    with statements() as seen:
        downloaded = alice.http.get(f"/v1/tasks/{task['id']}/outputs/data/content")

    assert downloaded.status_code == 200 and downloaded.content == ciphertext
    assert downloaded.headers["content-length"] == str(len(ciphertext))
    assert len([sql for sql in seen if "row_blobs" in sql]) == 1
