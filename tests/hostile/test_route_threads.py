"""The task path's routes take one thread hop: their store work runs in a worker thread of
server/blocking.py's pool, never on the event loop, and never through anyio's worker threads
(FastAPI's hop for a plain ``def`` route and its second one for the response model, or a
``run_in_threadpool`` in a coroutine route; decision 0037). The answers stay what they were."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio.to_thread
import httpx
import pytest
from sqlalchemy import Engine, event

from teeflow.crypto import b64e
from teeflow.server.app import Platform, utcnow
from teeflow.server.notify import task_key

from ._asgi import AppClient
from .conftest import Api, Member, approve, propose_echo, run_body, upload_dataset


class Threads:
    """Where the store's SQL ran and which calls went to anyio's worker threads, meanwhile."""

    def __init__(self) -> None:
        self.sql_threads: list[str] = []
        self.anyio_calls: list[str] = []

    def on_loop(self, loop_thread: int) -> list[str]:
        return [name for name in self.sql_threads if name == f"ident {loop_thread}"]


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[Threads]:
    seen = Threads()
    real = anyio.to_thread.run_sync

    async def counted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        seen.anyio_calls.append(getattr(func, "__qualname__", repr(func)))
        return await real(func, *args, **kwargs)

    def record(*_: Any) -> None:
        seen.sql_threads.append(f"ident {threading.get_ident()}")

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)


@contextmanager
def watched(threads: Threads) -> Iterator[None]:
    """Only what happens inside the block counts (setting up the task does not)."""
    threads.sql_threads.clear()
    threads.anyio_calls.clear()
    yield


def assert_one_hop(threads: Threads, *, loop_thread: int | None = None) -> None:
    loop = threading.get_ident() if loop_thread is None else loop_thread
    assert threads.anyio_calls == []
    assert threads.sql_threads, "the request read nothing: the check would prove nothing"
    assert threads.on_loop(loop) == []


def _platform(api: Api) -> Platform:
    platform: Platform = api.app.state.platform
    return platform


def _queued(member: Member) -> dict[str, Any]:
    dataset = upload_dataset(member, b"TFSEAL ciphertext stand-in")
    task = propose_echo(member, dataset["id"])
    approve(member, task)
    ran = member.http.post(f"/v1/tasks/{task['id']}/run", json=run_body(member, task))
    assert ran.status_code == 200, ran.text
    return task


def _finish(task_id: str) -> dict[str, Any]:
    ciphertext = b"TFSEAL sealed output stand-in"
    output = {
        "ciphertext_sha256": hashlib.sha256(ciphertext).hexdigest(),
        "wrapped_keys": {"alice": "AA=="},
        "content": b64e(ciphertext),
    }
    receipt = {"body": {"task_id": task_id}, "signature": "AA=="}
    return {"status": "succeeded", "receipt": receipt, "outputs": {"data": output}}


def test_the_members_routes_take_one_hop(api: Api, threads: Threads) -> None:
    alice = api.member("alice")
    token = api.register_executor()
    dataset = upload_dataset(alice, b"TFSEAL ciphertext stand-in")
    answers: dict[str, httpx.Response] = {}

    with watched(threads):
        answers["propose"] = alice.http.post(
            "/v1/tasks",
            json={
                "function": "echo",
                "inputs": {"data": dataset["id"]},
                "outputs": {"data": {"recipients": ["alice"]}},
            },
        )
    assert_one_hop(threads)
    task = answers["propose"].json()
    path = f"/v1/tasks/{task['id']}"
    calls: list[tuple[str, Callable[[], httpx.Response]]] = [
        ("approve", lambda: httpx.Response(200, json=approve(alice, task))),
        ("run", lambda: alice.http.post(f"{path}/run", json=run_body(alice, task))),
        ("show", lambda: alice.http.get(path)),
        ("show, a wait that times out", lambda: alice.http.get(path, params={"wait": 0.01})),
        ("list", lambda: alice.http.get("/v1/tasks", params={"status": "queued"})),
    ]
    for name, call in calls:
        with watched(threads):
            answers[name] = call()
        assert answers[name].status_code == 200, (name, answers[name].text)
        assert_one_hop(threads)
    with AppClient(api.app, token=token) as executor:
        assert executor.post("/v1/executor/leases").json()["leases"]
        finished = executor.post(
            f"/v1/executor/tasks/{task['id']}/finish", json=_finish(task["id"])
        )
        assert finished.status_code == 200, finished.text
    calls = [
        ("show, a wait over at once", lambda: alice.http.get(path, params=_until_done(20))),
        ("outputs", lambda: alice.http.get(f"{path}/outputs")),
        ("output key", lambda: alice.http.get(f"{path}/outputs/data/key")),
        ("receipt", lambda: alice.http.get(f"{path}/receipt")),
    ]
    for name, call in calls:
        with watched(threads):
            answers[name] = call()
        assert answers[name].status_code == 200, (name, answers[name].text)
        assert_one_hop(threads)

    assert answers["show"].json()["status"] == "queued"
    assert answers["show, a wait that times out"].json()["status"] == "queued"
    assert [t["id"] for t in answers["list"].json()] == [task["id"]]
    assert answers["show, a wait over at once"].json()["status"] == "succeeded"
    assert answers["outputs"].json()[0]["readable_by_you"] is True
    assert answers["output key"].json()["wrapped_key"] == "AA=="
    assert answers["receipt"].json() == _finish(task["id"])["receipt"]


def _until_done(wait: float) -> dict[str, Any]:
    return {"wait": wait, "until_done": "true"}


def test_the_executors_routes_take_one_hop(api: Api, threads: Threads) -> None:
    alice = api.member("alice")
    token = api.register_executor()
    first, second = _queued(alice), _queued(alice)
    answers: dict[str, httpx.Response] = {}
    with AppClient(api.app, token=token) as executor:
        calls: list[tuple[str, Callable[[], httpx.Response]]] = [
            ("lease", lambda: executor.post("/v1/executor/lease")),
            ("leases", lambda: executor.post("/v1/executor/leases", params={"limit": 4})),
            (
                "leases, a wait that times out",
                lambda: executor.post("/v1/executor/leases", params={"wait": 0.01}),
            ),
            ("heartbeat", lambda: executor.post(f"/v1/executor/tasks/{first['id']}/heartbeat")),
            (
                "finish",
                lambda: executor.post(
                    f"/v1/executor/tasks/{first['id']}/finish", json=_finish(first["id"])
                ),
            ),
            (
                "finishes",
                lambda: executor.post(
                    "/v1/executor/finishes",
                    json={"finishes": [{"task_id": second["id"], **_finish(second["id"])}]},
                ),
            ),
        ]
        for name, call in calls:
            with watched(threads):
                answers[name] = call()
            assert answers[name].status_code == 200, (name, answers[name].text)
            assert_one_hop(threads)

    assert answers["lease"].json()["task_id"] == first["id"]
    assert [b["task_id"] for b in answers["leases"].json()["leases"]] == [second["id"]]
    assert answers["leases, a wait that times out"].json() == {"leases": []}
    assert answers["heartbeat"].json() == {"ok": True}
    assert answers["finish"].json() == {"status": "succeeded"}
    assert answers["finishes"].json()["results"] == [
        {"task_id": second["id"], "status": "succeeded"}
    ]


def test_a_woken_long_poll_reads_off_the_loop(api: Api, threads: Threads) -> None:
    alice = api.member("alice")
    api.register_executor()
    task = _queued(alice)
    platform = _platform(api)
    answer: list[httpx.Response] = []
    loop_thread: list[int] = []

    def long_poll() -> None:
        loop_thread.append(threading.get_ident())
        with AppClient(api.app, token=alice.token) as client:
            answer.append(client.get(f"/v1/tasks/{task['id']}", params=_until_done(20)))

    with watched(threads):
        poller = threading.Thread(target=long_poll)
        poller.start()
        _wait_until(lambda: threads.sql_threads, poller)  # its first view is read
        platform.store.transition(task["id"], from_states={"queued"}, to="running", now=utcnow())
        checked = len(threads.sql_threads)
        platform.notifier.notify(task_key(task["id"]))
        _wait_until(lambda: len(threads.sql_threads) > checked, poller)  # woken, it reads
        platform.store.transition(task["id"], from_states={"running"}, to="failed", now=utcnow())
        platform.notifier.notify(task_key(task["id"]))
        poller.join(timeout=60)

    assert [response.json()["status"] for response in answer] == ["failed"]
    assert_one_hop(threads, loop_thread=loop_thread[0])


def _wait_until(condition: Callable[[], Any], poller: threading.Thread) -> None:
    while not condition():
        assert poller.is_alive(), "the long-poll ended early"
        poller.join(timeout=0.01)


def test_uploads_never_touch_the_store_on_the_loop(api: Api, threads: Threads) -> None:
    # The bytes go through server/routes/_streams.py's own hops; the lease check and the
    # checkpoint's record are store calls, which may wait for a lock.
    alice = api.member("alice")
    token = api.register_executor()
    task = _queued(alice)
    answers: dict[str, httpx.Response] = {}
    with AppClient(api.app, token=token) as executor:
        assert executor.post("/v1/executor/lease").status_code == 200
        base = f"/v1/executor/tasks/{task['id']}"
        calls: list[tuple[str, Callable[[], httpx.Response]]] = [
            ("output", lambda: executor.put(f"{base}/outputs/data", content=b"TFSEAL out")),
            (
                "checkpoint",
                lambda: executor.put(
                    f"{base}/checkpoint", content=b"TFSEAL cp", headers={"X-Sequence": "2"}
                ),
            ),
            (
                "stale checkpoint",
                lambda: executor.put(
                    f"{base}/checkpoint", content=b"TFSEAL old", headers={"X-Sequence": "1"}
                ),
            ),
        ]
        for name, call in calls:
            with watched(threads):
                answers[name] = call()
            assert threads.sql_threads, name
            assert threads.on_loop(threading.get_ident()) == [], name

    assert answers["output"].json()["size"] == len(b"TFSEAL out")
    assert answers["checkpoint"].status_code == 200, answers["checkpoint"].text
    assert answers["stale checkpoint"].status_code == 409
