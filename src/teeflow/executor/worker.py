"""Executor worker loop: register with evidence, lease, run in the enclave, upload, finish."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from teeflow.crypto import b64d, b64e
from teeflow.enclave.boot import BootedEnclave
from teeflow.enclave.runtime import ExecutionResult, TaskBundle
from teeflow.enclave.session import is_session_contract
from teeflow.tls import control_plane_http

__all__ = ["HttpHost", "Worker"]

log = logging.getLogger("teeflow.executor")


# How long one call to the control plane is retried while it is unreachable or answers 5xx (a
# restart, a gateway hiccup) before the executor gives the task up.
RETRY_SECONDS = 30.0


class LeaseLost(Exception):
    """The control plane says this executor no longer holds the task."""


class HostUnavailable(Exception):
    """A call to the control plane failed during the task, so the task's result is not the
    function's own: the executor gives it back (the lease lapses, another attempt resumes it)."""


def _check(response: httpx.Response) -> httpx.Response:
    if response.status_code == 409:
        raise LeaseLost(response.text)
    response.raise_for_status()
    return response


def _send(http: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request (bytes or JSON body), retried with backoff on transport errors, 5xx and 429
    (a control plane starting, restarting or overloaded) for up to RETRY_SECONDS."""
    deadline = time.monotonic() + RETRY_SECONDS
    pause = 0.25
    while True:
        try:
            response = http.request(method, url, **kwargs)
        except httpx.TransportError:
            if time.monotonic() + pause > deadline:
                raise
        else:
            busy = response.status_code >= 500 or response.status_code == 429
            if not busy or time.monotonic() + pause > deadline:
                return _check(response)
        time.sleep(pause)
        pause = min(pause * 2, 2.0)


def control_plane_client(
    server_url: str,
    verify: ssl.SSLContext | bool,
    *,
    transport: httpx.BaseTransport | None = None,
) -> httpx.Client:
    """The executor's HTTP client for ``server_url`` (keep-alive, no cookies:
    :func:`teeflow.tls.control_plane_http`); ``verify`` as :class:`Worker` takes it;
    ``transport``: httpx's own (tests)."""
    return control_plane_http(
        server_url, verify=verify, timeout=httpx.Timeout(60.0, connect=5.0), transport=transport
    )


class HttpHost:
    """The enclave's untrusted I/O for one leased task, over the control plane's HTTP API."""

    def __init__(
        self,
        http: httpx.Client,
        task_id: str,
        *,
        has_checkpoint: bool = True,
        inline_inputs: Mapping[str, bytes] | None = None,
        inline_function: bytes | None = None,
    ) -> None:
        """``inline_inputs`` and ``inline_function``: ciphertexts the lease carried (small ones),
        given to the enclave instead of downloaded; it checks them exactly as downloaded ones."""
        self._http = http
        self._base = f"/v1/executor/tasks/{task_id}"
        self._has_checkpoint = has_checkpoint
        self._inline = dict(inline_inputs or {})
        self._function = inline_function
        self.failed = False
        """Set once a call failed: the function may have failed because of it, not itself."""

    @classmethod
    def for_lease(cls, http: httpx.Client, lease: Mapping[str, Any]) -> HttpHost:
        """The host of one lease bundle (``POST /v1/executor/leases``), with the small inputs
        and function code it carried."""
        function = lease.get("inline_function")
        return cls(
            http,
            lease["task_id"],
            has_checkpoint=lease.get("has_checkpoint", True),
            inline_inputs={k: b64d(v) for k, v in lease.get("inline_inputs", {}).items()},
            inline_function=None if function is None else b64d(function),
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self.failed:
            raise HostUnavailable("an earlier call to the control plane failed")
        try:
            return _send(self._http, method, f"{self._base}{path}", **kwargs)
        except (httpx.HTTPError, LeaseLost):
            self.failed = True
            raise

    def read_input(self, slot: str) -> bytes:
        if slot in self._inline:  # small inputs came with the lease (the enclave checks hashes)
            return self._inline.pop(slot)
        return self._call("GET", f"/inputs/{slot}").content

    def read_function_source(self) -> bytes:
        if self._function is not None:  # the enclave checks it against the code hash
            return self._function
        return self._call("GET", "/function").content

    def load_checkpoint(self) -> bytes | None:
        if not self._has_checkpoint:
            return None
        response = self._call("GET", "/checkpoint")
        return None if response.status_code == 204 else response.content

    def save_checkpoint(self, sealed: bytes, sequence: int) -> None:
        self._call("PUT", "/checkpoint", content=sealed, headers={"X-Sequence": str(sequence)})

    def emit_event(self, recipient: str, payload: str) -> None:
        self._call("POST", "/events", json={"recipient": recipient, "payload": payload})


class Heartbeats:
    """Keeps the leases of the tasks this executor holds alive from one thread.

    A task is beaten every ``every`` seconds from :meth:`hold` until :meth:`release`: one thread
    for every task held (a batch waiting for its finish included), instead of a thread started
    and joined per task."""

    def __init__(self, beat: Callable[[str], None]) -> None:
        self._beat = beat
        self._due: dict[str, tuple[float, float]] = {}  # task id -> (next beat, period)
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._wakes_at = float("inf")

    def hold(self, task_id: str, every: float) -> None:
        with self._changed:
            at = time.monotonic() + every
            self._due[task_id] = (at, every)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="teeflow-heartbeats", daemon=True
                )
                self._thread.start()
            elif at < self._wakes_at:
                # Only when it is due before the thread wakes anyway: waking a thread per task
                # costs the worker a GIL hand-off each time.
                self._changed.notify()

    def release(self, task_id: str) -> None:
        with self._changed:
            self._due.pop(task_id, None)

    def _run(self) -> None:
        while True:
            with self._changed:
                now = time.monotonic()
                due = [task for task, (at, _) in self._due.items() if at <= now]
                for task in due:
                    self._due[task] = (now + self._due[task][1], self._due[task][1])
                if not due:
                    self._wakes_at = min((at for at, _ in self._due.values()), default=now + 3600)
                    self._changed.wait(self._wakes_at - now)
                    self._wakes_at = float("inf")
                    continue
            for task in due:  # outside the lock: a beat is a request
                self._beat(task)


@dataclass
class _Deferred:
    """A finish held back to go in one request with the rest of its batch; its task's lease
    is kept alive by the worker's :class:`Heartbeats` until then."""

    task_id: str
    body: dict[str, Any]


MAX_LEASE_BATCH = 16
"""The most tasks a lease request may take (the control plane's ``MAX_BATCH``)."""

FIRST_LEASE_LIMIT = 4
"""What the first lease request asks for, before any task's time is known."""

BATCH_SECONDS = 0.1
"""How long a batch should run: its first finish waits for its last task, and its queued tasks
wait on this executor while another may be idle, so a batch is as large as fits this time."""


def next_lease_limit(ran: int, seconds: float, *, most: int, batch_seconds: float) -> int:
    """How many tasks to lease next after ``ran`` tasks took ``seconds`` (lease to last
    finish held): as many as fit ``batch_seconds`` at that pace, 1 to ``most``. Short tasks
    come many to a request (the control plane pays its per-request cost once for them), a
    long one alone (its finish is not held back, nor the tasks behind it kept from others)."""
    if ran < 1:
        raise ValueError("ran must be at least 1")
    per_task = seconds / ran
    if per_task <= 0:
        return most
    return max(1, min(most, int(batch_seconds / per_task)))


class Worker:
    def __init__(
        self,
        *,
        enclave: BootedEnclave,
        server_url: str,
        secret: str,
        lease_wait: float = 10.0,
        lease_batch: int = MAX_LEASE_BATCH,
        batch_seconds: float = BATCH_SECONDS,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        """``verify``: the TLS setting for ``server_url`` (teeflow.tls.client_verify);
        ``lease_batch``: the most tasks one lease request takes (their finishes go back in one
        request too, after the last of them ran); ``batch_seconds``: how long a batch should
        run, which sizes the next lease request by how long the last tasks took
        (:func:`next_lease_limit`)."""
        self.enclave = enclave
        self.http = control_plane_client(server_url, verify)
        self.tls = verify
        """How the session channel (executor/session_channel.py) checks the server too."""
        self.secret = secret
        self.lease_wait = lease_wait
        self.lease_batch = lease_batch
        self.batch_seconds = batch_seconds
        self.lease_limit = min(FIRST_LEASE_LIMIT, lease_batch)
        """How many tasks the next lease request asks for (:func:`next_lease_limit`)."""
        self.clock = clock
        self.executor_id = ""
        self._registered_at = 0.0
        self._stop = threading.Event()
        self.heartbeats = Heartbeats(self._heartbeat)
        self._finishing: threading.Thread | None = None

    def register(self) -> None:
        runtime = self.enclave.runtime
        body = {
            "secret": self.secret,
            "tee": runtime.tee,
            "measurement": runtime.measurement,
            "evidence": self.enclave.evidence().to_json(),
            "public_keys": runtime.identity.public_keys(),
            "key_id": self.enclave.key_id_claim(),
        }
        # An executor may boot before the control plane answers: retried like every host call.
        data = _send(self.http, "POST", "/v1/executors", json=body).json()
        self.executor_id = data["executor_id"]
        self.http.headers["Authorization"] = f"Bearer {data['token']}"
        self._registered_at = time.monotonic()
        log.info(
            "registered executor %s (%s, measurement %s), key epoch %s",
            self.executor_id,
            runtime.tee,
            runtime.measurement[:16],
            runtime.key_epoch,
        )

    def run_forever(
        self, *, stop: threading.Event | None = None, max_tasks: int | None = None
    ) -> int:
        """Lease and run tasks until ``stop``; returns how many were leased.

        An inference session is served in a thread of its own while this loop goes on leasing
        batch tasks only (``sessions=false``): a session, however long, never keeps batch work
        from this executor (docs/inference.md).
        """
        stop = self._stop = stop or self._stop
        done = 0
        serving: threading.Thread | None = None
        try:
            while not stop.is_set() and (max_tasks is None or done < max_tasks):
                busy = serving is not None and serving.is_alive()
                finishes: list[_Deferred] = []
                try:
                    limit = self.lease_limit
                    if max_tasks is not None:
                        limit = min(limit, max_tasks - done)
                    leases = self._lease(stop, sessions=not busy, limit=limit)
                    # When the control plane granted them: the long-poll's wait before (up to
                    # half the lease time) must not make every task of an idle executor's
                    # next batch renew its fresh lease before it runs.
                    leased_at = time.monotonic()
                    # A batch of one finishes at once, as before batches (its timings stay whole).
                    held = finishes if len(leases) > 1 else None
                    ran = 0
                    for lease in leases:
                        done += 1
                        if not busy and is_session_contract(lease["contract"]):
                            serving = threading.Thread(
                                target=self._run_logged, args=(lease,), daemon=True
                            )
                            serving.start()
                            busy = True
                        elif self._still_held(lease, leased_at):
                            self._run_logged(lease, held)
                            ran += 1
                    if ran:
                        self.lease_limit = next_lease_limit(
                            ran,
                            time.monotonic() - leased_at,
                            most=self.lease_batch,
                            batch_seconds=self.batch_seconds,
                        )
                finally:
                    self._finish_in_background(finishes)
        finally:
            self._wait_for_finishes()
            if serving is not None:
                serving.join()
        return done

    def _lease(self, stop: threading.Event, *, sessions: bool, limit: int) -> list[dict[str, Any]]:
        """One long-poll for up to ``limit`` (at most ``lease_batch``) tasks, batch tasks only
        unless ``sessions``; empty if none came."""
        if time.monotonic() - self._registered_at > 1800:
            self.register()  # fresh evidence before the old one expires
        params: dict[str, Any] = {
            "wait": self.lease_wait,
            "limit": max(1, min(limit, self.lease_batch)),
        }
        if not sessions:
            params["sessions"] = "false"
        try:
            # Long poll: the control plane answers as soon as a task is queued.
            response = self.http.post("/v1/executor/leases", params=params)
        except httpx.TransportError:
            stop.wait(1.0)
            return []
        if response.status_code != 200:
            log.warning("lease request refused (HTTP %s); retrying", response.status_code)
            stop.wait(1.0)
            return []
        leases: list[dict[str, Any]] = response.json()["leases"]
        return leases

    def _still_held(self, lease: dict[str, Any], leased_at: float) -> bool:
        """Before running a lease that waited behind others of its batch: renew it if a third
        of the lease time passed, and skip it if it was lost meanwhile (another executor may
        have taken it after it lapsed)."""
        if time.monotonic() - leased_at < float(lease["lease_seconds"]) / 3:
            return True
        try:
            response = self.http.post(f"/v1/executor/tasks/{lease['task_id']}/heartbeat")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def _finish_in_background(self, finishes: list[_Deferred]) -> None:
        """Send a batch's finishes from a thread while this one leases the next batch (one
        batch's finishes in flight at a time; their leases are beaten until they are sent)."""
        self._wait_for_finishes()
        if finishes:
            self._finishing = threading.Thread(
                target=self._finish_all, args=(finishes,), name="teeflow-finish", daemon=True
            )
            self._finishing.start()

    def _wait_for_finishes(self) -> None:
        if self._finishing is not None:
            self._finishing.join()
            self._finishing = None

    def _finish_all(self, finishes: list[_Deferred]) -> None:
        """Send the batch's finishes in one request, then stop their heartbeats."""
        try:
            if finishes:
                body = {"finishes": [f.body for f in finishes]}
                answer = _send(self.http, "POST", "/v1/executor/finishes", json=body).json()
                for result in answer["results"]:
                    if "error" in result:
                        log.warning(
                            "task %s: finish refused (%s)",
                            result["task_id"],
                            result["error"]["code"],
                        )
        except httpx.HTTPError as exc:
            # The leases will expire and the tasks will be retried.
            log.error("batch finish failed: %s", type(exc).__name__)
        finally:
            for deferred in finishes:
                self.heartbeats.release(deferred.task_id)

    def _run_logged(self, lease: dict[str, Any], finishes: list[_Deferred] | None = None) -> None:
        try:
            self.run_one(lease, finishes)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            # The lease will expire and the task will be retried (or failed after too many
            # attempts); the executor itself keeps serving.
            log.error("task delivery failed: %s", type(exc).__name__)

    def run_one(self, lease: dict[str, Any], finishes: list[_Deferred] | None = None) -> None:
        """Run one leased task and finish it, or with ``finishes``, append its finish there
        (its heartbeat goes on until the caller sends it; see :meth:`_finish_all`)."""
        if is_session_contract(lease["contract"]):
            # An inference session serves requests until it ends (executor/session.py).
            from teeflow.executor.session import serve_session

            serve_session(self, lease, stop=self._stop)
            return
        task_id = lease["task_id"]
        bundle = TaskBundle(
            contract=lease["contract"],
            approvals=lease["approvals"],
            joint_inputs=lease.get("joint_inputs", {}),
            run_authorisation=lease.get("run_authorisation"),
            withdrawals=lease.get("withdrawals") or {},
        )
        self.heartbeats.hold(task_id, float(lease["lease_seconds"]) / 3)
        deferred = False
        try:
            host = HttpHost.for_lease(self.http, lease)
            runtime = self.enclave.runtime_for(bundle.contract)  # the key epoch approved
            result = runtime.execute(bundle, host, now=self.clock())
            if host.failed:
                raise HostUnavailable("a call to the control plane failed during the task")
            started = time.perf_counter()
            body = self._deliver(
                task_id,
                result,
                inline_limit=int(lease.get("inline_limit", 0)),
                defer=finishes is not None,
            )
            if finishes is not None and body is not None:
                finishes.append(_Deferred(task_id, {"task_id": task_id, **body}))
                deferred = True
            timings = {**result.timings, "deliver": time.perf_counter() - started}
            # Phase durations only (no task data): what benchmarks split a task's time by.
            log.info(
                "task %s %s; timings %s",
                task_id,
                result.status,
                json.dumps({k: round(v, 6) for k, v in sorted(timings.items())}),
            )
        except LeaseLost:
            log.warning("task %s: lease lost; another executor will take it", task_id)
        except HostUnavailable as exc:
            log.warning("task %s given back (%s); it will be retried", task_id, exc)
        finally:
            if not deferred:
                self.heartbeats.release(task_id)

    def _heartbeat(self, task_id: str) -> None:
        try:
            self.http.post(f"/v1/executor/tasks/{task_id}/heartbeat")
        except httpx.HTTPError:
            log.warning("heartbeat for %s failed", task_id)

    def _deliver(
        self, task_id: str, result: ExecutionResult, *, inline_limit: int = 0, defer: bool = False
    ) -> dict[str, Any] | None:
        """Upload the outputs and finish; outputs up to ``inline_limit`` bytes (the control
        plane's, from the lease) ride inside the finish request. With ``defer``, the finish's
        body is returned instead of sent."""
        base = f"/v1/executor/tasks/{task_id}"
        outputs = {}
        for slot, out in result.outputs.items():
            outputs[slot] = {
                "ciphertext_sha256": out.ciphertext_sha256,
                "wrapped_keys": out.wrapped_keys,
                "joint_owners": out.joint_owners,
            }
            if len(out.ciphertext) <= inline_limit:
                outputs[slot]["content"] = b64e(out.ciphertext)  # rides in the finish request
            else:
                _send(self.http, "PUT", f"{base}/outputs/{slot}", content=out.ciphertext)
        body = {
            "status": result.status,
            "reason": result.reason,
            "receipt": result.receipt,
            "outputs": outputs,
        }
        if defer:
            return body
        _send(self.http, "POST", f"{base}/finish", json=body)
        return None


def read_secret(data_dir: Path) -> str:
    return (data_dir / "executor-secret").read_text().strip()
