"""A batch's leases are renewed before they run only when a third of the lease time passed since
the control plane granted them (executor/worker.py ``_still_held``): the time the executor spent
long-polling for work before the grant does not count, so a task leased after an idle wait costs
no heartbeat request."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from teeflow.executor import worker as worker_module
from teeflow.executor.worker import Worker

LEASE_SECONDS = 15.0
ECHO = {"function": {"kind": "builtin", "name": "echo"}}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _worker(
    monkeypatch: pytest.MonkeyPatch, *, poll_waits: float, run_takes: float
) -> tuple[Worker, list[str], list[str]]:
    """A worker whose one lease request waits ``poll_waits`` seconds (of a fake clock) before
    two tasks come, each running for ``run_takes``; (worker, tasks run, heartbeat paths)."""
    clock = Clock()
    ran: list[str] = []
    beats: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/executor/leases":
            clock.now += poll_waits  # the long-poll held the request until work came
            leases = [
                {"task_id": task, "contract": ECHO, "lease_seconds": LEASE_SECONDS}
                for task in ("t1", "t2")
            ]
            return httpx.Response(200, json={"leases": leases})
        beats.append(request.url.path)
        return httpx.Response(200, json={"ok": True})

    def run_one(lease: dict[str, Any]) -> None:
        ran.append(lease["task_id"])
        clock.now += run_takes

    return mock_worker(monkeypatch, handle, clock, run_one), ran, beats


def mock_worker(
    monkeypatch: pytest.MonkeyPatch,
    handle: Callable[[httpx.Request], httpx.Response],
    clock: Clock,
    run: Callable[[dict[str, Any]], None],
) -> Worker:
    """A registered worker whose control plane is ``handle`` and which runs each lease with
    ``run`` instead of an enclave (time.monotonic is ``clock``)."""
    monkeypatch.setattr(worker_module.time, "monotonic", clock)
    enclave: Any = None
    worker = Worker(enclave=enclave, server_url="http://control-plane", secret="s")
    worker.http = httpx.Client(
        base_url="http://control-plane", transport=httpx.MockTransport(handle)
    )
    worker._registered_at = clock.now

    def run_one(lease: dict[str, Any], finishes: Any = None) -> None:
        run(lease)

    monkeypatch.setattr(worker, "run_one", run_one)
    return worker


def test_a_lease_granted_after_a_long_idle_poll_runs_without_a_heartbeat(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker, ran, beats = _worker(monkeypatch, poll_waits=LEASE_SECONDS / 2, run_takes=0.01)

    assert worker.run_forever(max_tasks=2) == 2

    assert ran == ["t1", "t2"]
    assert beats == []


def test_a_lease_that_waited_behind_its_batch_is_renewed_before_it_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker, ran, beats = _worker(monkeypatch, poll_waits=0.0, run_takes=LEASE_SECONDS / 2)

    assert worker.run_forever(max_tasks=2) == 2

    assert ran == ["t1", "t2"]
    assert beats == ["/v1/executor/tasks/t2/heartbeat"]
