"""An executor that boots while the control plane is starting, restarting or overloaded keeps
trying to register instead of exiting; a refusal (a wrong executor secret) still stops it at once.

Seen in a full test run on a loaded 2-core machine: "an executor exited during start".
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from teeflow.executor import worker as worker_module
from teeflow.executor.worker import Worker


def _worker(
    monkeypatch: pytest.MonkeyPatch,
    steps: list[int | type[Exception]],
    steps_after: int | type[Exception] = 200,
) -> Worker:
    monkeypatch.setattr(worker_module.time, "sleep", lambda _: None)
    runtime = SimpleNamespace(
        tee="sim", measurement="ab" * 32, key_epoch=0, identity=SimpleNamespace(public_keys=dict)
    )
    enclave: Any = SimpleNamespace(
        runtime=runtime,
        evidence=lambda: SimpleNamespace(to_json=lambda: {"kind": "stub"}),
        key_id_claim=lambda: {"measurement": "ab" * 32, "epoch": 0, "signature": "stub"},
    )
    worker = Worker(enclave=enclave, server_url="http://control-plane", secret="s")

    def handle(request: httpx.Request) -> httpx.Response:
        step = steps.pop(0) if steps else steps_after
        if isinstance(step, int):
            body = {"executor_id": "e1", "token": "t"} if step == 200 else {}
            return httpx.Response(step, json=body)
        raise step("injected", request=request)

    worker.http = httpx.Client(
        base_url="http://control-plane", transport=httpx.MockTransport(handle)
    )
    return worker


def test_registration_rides_out_a_starting_or_overloaded_control_plane(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    steps: list[int | type[Exception]] = [httpx.ConnectError, 503, 429, httpx.ReadTimeout, 500]
    worker = _worker(monkeypatch, steps)

    worker.register()

    assert worker.executor_id == "e1" and steps == []


def test_a_refused_registration_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    steps: list[int | type[Exception]] = [403, 200]
    worker = _worker(monkeypatch, steps)

    with pytest.raises(httpx.HTTPStatusError):
        worker.register()
    assert steps == [200]


def test_a_control_plane_that_never_answers_fails_the_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_module, "RETRY_SECONDS", 0.5)  # sleeps are skipped: a short spin
    worker = _worker(monkeypatch, [], steps_after=httpx.ConnectError)

    with pytest.raises(httpx.ConnectError):
        worker.register()
