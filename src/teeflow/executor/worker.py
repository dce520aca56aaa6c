"""Executor worker loop: register with evidence, lease, run in the enclave, upload, finish."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from teeflow.enclave.boot import BootedEnclave
from teeflow.enclave.runtime import ExecutionResult, TaskBundle

__all__ = ["HttpHost", "Worker"]

log = logging.getLogger("teeflow.executor")


class LeaseLost(Exception):
    """The control plane says this executor no longer holds the task."""


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code == 409:
        raise LeaseLost(response.text)
    response.raise_for_status()
    return response


class HttpHost:
    """The enclave's untrusted I/O for one leased task, over the control plane's HTTP API."""

    def __init__(self, http: httpx.Client, task_id: str) -> None:
        self._http = http
        self._base = f"/v1/executor/tasks/{task_id}"

    def read_input(self, slot: str) -> bytes:
        return _check(self._http.get(f"{self._base}/inputs/{slot}")).content

    def read_function_source(self) -> bytes:
        return _check(self._http.get(f"{self._base}/function")).content

    def load_checkpoint(self) -> bytes | None:
        response = _check(self._http.get(f"{self._base}/checkpoint"))
        return None if response.status_code == 204 else response.content

    def save_checkpoint(self, sealed: bytes, sequence: int) -> None:
        _check(
            self._http.put(
                f"{self._base}/checkpoint", content=sealed, headers={"X-Sequence": str(sequence)}
            )
        )

    def emit_event(self, recipient: str, payload: str) -> None:
        _check(
            self._http.post(
                f"{self._base}/events", json={"recipient": recipient, "payload": payload}
            )
        )


class Worker:
    def __init__(
        self,
        *,
        enclave: BootedEnclave,
        server_url: str,
        secret: str,
        poll_interval: float = 0.2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.enclave = enclave
        self.http = httpx.Client(base_url=server_url, timeout=httpx.Timeout(60.0, connect=5.0))
        self.secret = secret
        self.poll_interval = poll_interval
        self.clock = clock
        self.executor_id = ""
        self._registered_at = 0.0

    def register(self) -> None:
        runtime = self.enclave.runtime
        body = {
            "secret": self.secret,
            "tee": runtime.tee,
            "measurement": runtime.measurement,
            "evidence": self.enclave.evidence().to_json(),
            "public_keys": runtime.identity.public_keys(),
        }
        data = self.http.post("/v1/executors", json=body).raise_for_status().json()
        self.executor_id = data["executor_id"]
        self.http.headers["Authorization"] = f"Bearer {data['token']}"
        self._registered_at = time.monotonic()
        log.info(
            "registered executor %s (%s, measurement %s)",
            self.executor_id,
            runtime.tee,
            runtime.measurement[:16],
        )

    def run_forever(
        self, *, stop: threading.Event | None = None, max_tasks: int | None = None
    ) -> int:
        stop = stop or threading.Event()
        done = 0
        while not stop.is_set() and (max_tasks is None or done < max_tasks):
            if time.monotonic() - self._registered_at > 1800:
                self.register()  # fresh evidence before the old one expires
            try:
                response = self.http.post("/v1/executor/lease")
            except httpx.TransportError:
                stop.wait(1.0)
                continue
            if response.status_code == 204:
                stop.wait(self.poll_interval)
                continue
            if response.status_code != 200:
                log.warning("lease request refused (HTTP %s); retrying", response.status_code)
                stop.wait(1.0)
                continue
            try:
                self.run_one(response.json())
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                # The lease will expire and the task will be retried (or failed after too many
                # attempts); the executor itself keeps serving.
                log.error("task delivery failed: %s", type(exc).__name__)
            done += 1
        return done

    def run_one(self, lease: dict[str, Any]) -> None:
        task_id = lease["task_id"]
        bundle = TaskBundle(
            contract=lease["contract"],
            approvals=lease["approvals"],
            joint_inputs=lease.get("joint_inputs", {}),
        )
        stop_beat = threading.Event()
        beat = threading.Thread(
            target=self._heartbeat,
            args=(task_id, float(lease["lease_seconds"]) / 3, stop_beat),
            daemon=True,
        )
        beat.start()
        try:
            result = self.enclave.runtime.execute(
                bundle, HttpHost(self.http, task_id), now=self.clock()
            )
            self._deliver(task_id, result)
            log.info("task %s %s", task_id, result.status)
        except LeaseLost:
            log.warning("task %s: lease lost; another executor will take it", task_id)
        finally:
            stop_beat.set()
            beat.join()

    def _heartbeat(self, task_id: str, every: float, stop: threading.Event) -> None:
        while not stop.wait(every):
            try:
                self.http.post(f"/v1/executor/tasks/{task_id}/heartbeat")
            except httpx.HTTPError:
                log.warning("heartbeat for %s failed", task_id)

    def _deliver(self, task_id: str, result: ExecutionResult) -> None:
        base = f"/v1/executor/tasks/{task_id}"
        outputs = {}
        for slot, out in result.outputs.items():
            _check(self.http.put(f"{base}/outputs/{slot}", content=out.ciphertext))
            outputs[slot] = {
                "ciphertext_sha256": out.ciphertext_sha256,
                "wrapped_keys": out.wrapped_keys,
                "joint_owners": out.joint_owners,
            }
        body = {
            "status": result.status,
            "reason": result.reason,
            "receipt": result.receipt,
            "outputs": outputs,
        }
        _check(self.http.post(f"{base}/finish", json=body))


def read_secret(data_dir: Path) -> str:
    return (data_dir / "executor-secret").read_text().strip()
