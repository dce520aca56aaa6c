"""An executor sizes each lease request by how long its last tasks took (executor/worker.py
``next_lease_limit``): short tasks come many to a request, so the control plane pays its
per-request cost once for them; a long task comes alone, so its finish is not held back behind
others of its batch and queued tasks are not kept on this executor while another is idle."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from test_lease_renewal import Clock, mock_worker

from teeflow.executor.worker import FIRST_LEASE_LIMIT, next_lease_limit

ECHO = {"function": {"kind": "builtin", "name": "echo"}}


def test_the_next_lease_takes_as_many_tasks_as_fit_the_batch_time() -> None:
    assert next_lease_limit(4, 0.02, most=16, batch_seconds=0.1) == 16  # 5 ms each: capped
    assert next_lease_limit(4, 0.04, most=16, batch_seconds=0.1) == 10  # 10 ms each
    assert next_lease_limit(2, 0.1, most=16, batch_seconds=0.1) == 2
    assert next_lease_limit(1, 30.0, most=16, batch_seconds=0.1) == 1  # a long task: alone
    assert next_lease_limit(3, 0.0, most=8, batch_seconds=0.1) == 8
    with pytest.raises(ValueError, match="at least 1"):
        next_lease_limit(0, 1.0, most=16, batch_seconds=0.1)


def _run(monkeypatch: pytest.MonkeyPatch, run_takes: float, tasks: int) -> list[int]:
    """The ``limit`` of each lease request of a worker whose tasks each take ``run_takes``
    seconds (a fake clock), while it runs ``tasks`` of them; the control plane always has
    as many queued as asked for."""
    clock = Clock()
    limits: list[int] = []
    counter = iter(range(1_000_000))

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/executor/leases":
            limit = int(request.url.params["limit"])
            limits.append(limit)
            leases = [
                {"task_id": f"t{next(counter)}", "contract": ECHO, "lease_seconds": 1e6}
                for _ in range(limit)
            ]
            return httpx.Response(200, json={"leases": leases})
        return httpx.Response(200, json={"results": []})

    def run(lease: dict[str, Any]) -> None:
        clock.now += run_takes

    mock_worker(monkeypatch, handle, clock, run).run_forever(max_tasks=tasks)
    return limits


def test_short_tasks_are_leased_many_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = _run(monkeypatch, run_takes=0.002, tasks=4 + 16 + 16)

    assert limits == [FIRST_LEASE_LIMIT, 16, 16]


def test_long_tasks_are_leased_one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = _run(monkeypatch, run_takes=5.0, tasks=4 + 3)

    assert limits == [FIRST_LEASE_LIMIT, 1, 1, 1]
