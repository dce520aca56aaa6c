"""The executor's host calls ride out brief control-plane failures, and a task whose host calls
failed is given back (its lease lapses and another attempt resumes it), never finished as failed.

Fast, in-process counterparts of test_control_plane_hiccups.py: the control plane is an
``httpx.MockTransport``, the enclave a stub that behaves like the real runtime (a host error inside
the function becomes a failed result).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from teeflow.enclave.runtime import ExecutionResult, Host, TaskBundle
from teeflow.executor import worker as worker_module
from teeflow.executor.worker import HostUnavailable, HttpHost, Worker

Handler = Callable[[httpx.Request], httpx.Response]


def _script(*steps: int | type[Exception]) -> tuple[Handler, list[str]]:
    """A control plane that answers each request with the next step (status or raised error),
    then 200; and the list of requests it saw."""
    pending = list(steps)
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path}")
        step = pending.pop(0) if pending else 200
        if isinstance(step, int):
            return httpx.Response(step, json={})
        raise step("injected", request=request)

    return handle, seen


@pytest.fixture
def http() -> Iterator[Callable[[Handler], httpx.Client]]:
    made: list[httpx.Client] = []

    def make(handler: Handler) -> httpx.Client:
        client = httpx.Client(
            base_url="http://control-plane", transport=httpx.MockTransport(handler)
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def test_checkpoint_survives_a_503_and_a_refused_connection(
    http: Callable[[Handler], httpx.Client],
) -> None:
    handler, seen = _script(503, httpx.ConnectError)
    host = HttpHost(http(handler), "t1")

    host.save_checkpoint(b"sealed", 3)

    assert seen == ["PUT /v1/executor/tasks/t1/checkpoint"] * 3
    assert not host.failed


def test_a_lasting_failure_marks_the_host_failed_and_stops_further_calls(
    http: Callable[[Handler], httpx.Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "RETRY_SECONDS", 0.3)
    handler, seen = _script(*[503] * 50)
    host = HttpHost(http(handler), "t1")

    with pytest.raises(httpx.HTTPStatusError):
        host.emit_event("bank", "payload")
    calls = len(seen)
    with pytest.raises(HostUnavailable):
        host.save_checkpoint(b"sealed", 1)

    assert host.failed and 1 < calls == len(seen)


class _Runtime:
    """Fails its function the way the real runtime does when a host call raises inside it."""

    tee = "sim"

    def execute(self, bundle: TaskBundle, host: Host, *, now: datetime) -> ExecutionResult:
        try:
            host.save_checkpoint(b"sealed", 1)
        except Exception as exc:  # the runtime turns any function exception into a failure
            return ExecutionResult(
                status="failed", outputs={}, receipt={}, reason=f"function raised {exc!r}"
            )
        return ExecutionResult(status="succeeded", outputs={}, receipt={}, reason="")


class _Enclave:
    runtime = _Runtime()

    def runtime_for(self, contract: Any) -> _Runtime:
        return self.runtime


def _lease() -> dict[str, Any]:
    contract = {"task_id": "t1", "function": {"kind": "builtin", "name": "echo"}}
    return {"task_id": "t1", "contract": contract, "approvals": {}, "lease_seconds": 30}


@pytest.mark.parametrize(("failures", "finished"), [(2, True), (50, False)])
def test_a_task_whose_host_failed_is_given_back_not_finished_as_failed(
    http: Callable[[Handler], httpx.Client],
    monkeypatch: pytest.MonkeyPatch,
    failures: int,
    finished: bool,
) -> None:
    monkeypatch.setattr(worker_module, "RETRY_SECONDS", 0.8)
    handler, seen = _script(*[503] * failures)
    worker = Worker(enclave=_Enclave(), server_url="http://control-plane", secret="s")
    worker.http.close()
    worker.http = http(handler)

    worker.run_one(_lease())

    assert ("POST /v1/executor/tasks/t1/finish" in seen) is finished
