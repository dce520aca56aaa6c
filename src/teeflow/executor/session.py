"""The executor's side of an inference session: relay requests between the control plane and the
enclave session, keep the lease alive, and end the session the way it ended.

Untrusted like the rest of the executor: it moves ciphertext and signatures, and the enclave
(enclave/session.py) checks all of them. The loop ends when

- the enclave session reaches a limit (``max_requests``, ``max_seconds``): the ``usage`` output
  and the receipt go to the control plane as for any task, and the task succeeds;
- the lease is lost (the creator canceled the task, or another executor took it over): the enclave
  signs a receipt of what it served, which the control plane keeps for a canceled task;
- the executor shuts down: the session is dropped unfinished, its lease lapses and another executor
  opens the session again, from the counters the enclave sealed into the session's checkpoint
  before each batch of answers left (enclave/session_limits.py).

The worker serves a session in a thread of its own and goes on leasing batch tasks meanwhile
(executor/worker.py), so a session never starves batch work.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from teeflow.crypto import CryptoError, b64d, b64e
from teeflow.enclave.runtime import TaskBundle
from teeflow.enclave.session import (
    InferenceSession,
    SessionRefused,
    SessionRequest,
    SessionResponse,
)
from teeflow.executor.session_channel import ChannelDropped, serve_over_channel
from teeflow.executor.worker import HostUnavailable, HttpHost, LeaseLost

if TYPE_CHECKING:
    from teeflow.executor.worker import Worker

__all__ = ["serve_session"]

log = logging.getLogger("teeflow.executor")

BATCH = 16
"""Most requests taken from the control plane at once."""
_PAUSE = 0.5


def serve_session(worker: Worker, lease: dict[str, Any], *, stop: threading.Event) -> None:
    """Open the leased session in the enclave and serve it until it ends (module docstring)."""
    task_id = lease["task_id"]
    bundle = TaskBundle(
        contract=lease["contract"],
        approvals=lease["approvals"],
        joint_inputs=lease.get("joint_inputs", {}),
        run_authorisation=lease.get("run_authorisation"),
        withdrawals=lease.get("withdrawals") or {},
    )
    lost = threading.Event()
    done = threading.Event()
    beat = threading.Thread(
        target=_heartbeat,
        args=(worker.http, task_id, float(lease["lease_seconds"]) / 3, lost, done),
        daemon=True,
    )
    beat.start()
    try:
        host = HttpHost.for_lease(worker.http, lease)
        try:
            session = InferenceSession.open(
                worker.enclave.runtime, bundle, host, now=worker.clock()
            )
        except SessionRefused as refused:
            worker._deliver(task_id, refused.result)
            log.info("task %s failed: the session did not start", task_id)
            return
        log.info("task %s: inference session open", task_id)
        relay = _Relay(worker.http, task_id, lease_wait=worker.lease_wait)
        try:
            ended = _serve(worker, relay, session, stop=stop, lost=lost, host=host)
            _end(worker, task_id, session, ended)
        finally:
            session.close()  # idempotent: whatever happened, the model leaves memory
    except (LeaseLost, HostUnavailable, httpx.HTTPError, ValueError, KeyError) as exc:
        # The lease lapses and another executor opens the session again.
        log.warning("task %s: session ended (%s)", task_id, type(exc).__name__)
    finally:
        done.set()
        beat.join()


def _serve(
    worker: Worker,
    relay: _Relay,
    session: InferenceSession,
    *,
    stop: threading.Event,
    lost: threading.Event,
    host: HttpHost,
) -> str:
    """Over the channel (executor/session_channel.py) if the control plane has one, else (or
    once it drops) over the HTTP long poll."""
    try:
        return serve_over_channel(
            worker.http,
            worker.tls,
            relay.task_id,
            session,
            stop=stop,
            lost=lost,
            host=host,
            request=_request,
            wire=_wire,
            checkpoint_every=worker.enclave.runtime.checkpoint_interval_s,
        )
    except ChannelDropped as dropped:
        log.info("task %s: no session channel (%s); long-polling over HTTP", relay.task_id, dropped)
    return relay.serve(session, stop=stop, lost=lost, checkpoint=lambda: session.checkpoint(host))


def _end(worker: Worker, task_id: str, session: InferenceSession, ended: str) -> None:
    if ended == "limit":
        worker._deliver(task_id, session.finish(now=worker.clock()))
        log.info("task %s succeeded: the session reached its %s", task_id, session.end)
    elif ended == "lost":
        receipt = session.stop(now=worker.clock())
        response = worker.http.post(
            f"/v1/executor/tasks/{task_id}/session-receipt", json={"receipt": receipt}
        )
        # 409: the lease went to another executor, which reports the session itself
        log.info("task %s: session stopped (receipt: HTTP %s)", task_id, response.status_code)
    else:
        log.info("task %s: shutting down; the session is given back", task_id)


def _heartbeat(
    http: httpx.Client, task_id: str, every: float, lost: threading.Event, done: threading.Event
) -> None:
    while not done.wait(every):
        try:
            response = http.post(f"/v1/executor/tasks/{task_id}/heartbeat")
        except httpx.HTTPError:
            log.warning("heartbeat for %s failed", task_id)
            continue
        if response.status_code == 409:
            lost.set()
            return


class _Relay:
    """The control plane's session endpoints for one task."""

    def __init__(self, http: httpx.Client, task_id: str, *, lease_wait: float) -> None:
        self._http = http
        self._base = f"/v1/executor/tasks/{task_id}"
        self.task_id = task_id
        self._wait = lease_wait

    def serve(
        self,
        session: InferenceSession,
        *,
        stop: threading.Event,
        lost: threading.Event,
        checkpoint: Callable[[], None],
    ) -> str:
        """Answer requests until the session ends: "limit", "lost" or "shutdown".

        The answers to one batch ride on the call that fetches the next batch, after the enclave
        sealed its counters into the checkpoint (``checkpoint``), so that no answer leaves
        uncounted.
        """
        answers: list[dict[str, str]] = []
        while True:  # bounded: the session ends after max_seconds at the latest
            ended = "shutdown" if stop.is_set() else "lost" if lost.is_set() else None
            if ended is not None or session.end is not None:
                self._hand_back(answers)
                return ended or "limit"
            wait = max(0.0, min(self._wait, session.seconds_left()))
            try:
                response = self._http.post(
                    f"{self._base}/requests/next",
                    params={"wait": round(wait, 3), "limit": BATCH},
                    json={"answers": answers},
                )
            except httpx.TransportError:
                log.warning("session %s: %d answer(s) lost on the way", self.task_id, len(answers))
                answers = []  # their requesters time out and retry with new request ids
                stop.wait(_PAUSE)
                continue
            answers = []
            if response.status_code == 409:
                return "lost"
            if response.status_code == 204:
                continue
            if response.status_code != 200:
                log.warning(
                    "session %s: next refused (HTTP %s)", self.task_id, response.status_code
                )
                stop.wait(_PAUSE)
                continue
            answers = [_wire(session.handle(_request(r))) for r in response.json()["requests"]]
            if answers:
                checkpoint()

    def _hand_back(self, answers: list[dict[str, str]]) -> None:
        """Deliver the last answers without taking more requests."""
        if answers:
            with contextlib.suppress(httpx.HTTPError):
                self._http.post(
                    f"{self._base}/requests/next",
                    params={"limit": 0, "wait": 0},
                    json={"answers": answers},
                )


def _wire(answer: SessionResponse) -> dict[str, str]:
    return {
        "request_id": answer.request_id,
        "requester": answer.requester,
        "sealed": b64e(answer.sealed),
        "signature": b64e(answer.signature),
        "refused": answer.refused,
    }


def _request(item: Any) -> SessionRequest:
    """A relayed request as the enclave takes it; a malformed one fails the enclave's checks."""
    requester = item.get("requester") if isinstance(item, dict) else None
    request_id = item.get("request_id") if isinstance(item, dict) else None
    try:
        ciphertext, signature = b64d(item["ciphertext"]), b64d(item["signature"])
    except (CryptoError, KeyError, TypeError):
        ciphertext, signature = b"", b""
    return SessionRequest(str(requester), str(request_id), ciphertext, signature)
