"""The executor's long-lived channel to the control plane's relay for one session.

One WebSocket (server/routes/channel.py), authenticated once with the executor's token: the relay
pushes request frames as members send them, and the answers to each frame go back on the same
socket, in one frame with the checkpoint the enclave sealed its counters into before they left
(the HTTP path stores it with a call of its own first: executor/session.py); the relay stores
that checkpoint off the answers' path (docs/decisions/0026-session-channel.md). If the channel
cannot be opened, or drops, the session goes on over the HTTP long poll.
"""

from __future__ import annotations

import json
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, WebSocketException

from teeflow.crypto import b64e
from teeflow.enclave.runtime import Host
from teeflow.enclave.session import InferenceSession, SessionRequest, SessionResponse
from teeflow.tls import ClientConnection, connect_websocket

__all__ = ["ChannelDropped", "serve_over_channel"]

log = logging.getLogger("teeflow.executor")

_TICK = 0.5
"""Longest wait for a frame before the loop looks at stop, lost and the session's end again."""
_LEASE_LOST = 4409


class ChannelDropped(Exception):
    """The channel could not be opened or closed on its own: go on over HTTP."""


def serve_over_channel(
    http: httpx.Client,
    tls: ssl.SSLContext | bool,
    task_id: str,
    session: InferenceSession,
    *,
    stop: threading.Event,
    lost: threading.Event,
    host: Host,
    request: Callable[[Any], SessionRequest],
    wire: Callable[[SessionResponse], dict[str, str]],
    checkpoint_every: float = 0.0,
) -> str:
    """Answer requests until the session ends: "limit", "lost" or "shutdown"; ChannelDropped
    when the channel is not there (any answers of a frame in hand were sent first).

    ``checkpoint_every``: seconds between the sealed checkpoints sent with answers (0: with
    every frame of answers); counters not yet sent go out as soon as that much time has passed,
    with the next answers or on their own, and before the executor gives the session back."""
    try:
        socket = connect_websocket(http, f"/v1/executor/tasks/{task_id}/channel", tls)
    except (OSError, WebSocketException) as exc:
        raise ChannelDropped(type(exc).__name__) from exc
    pace = _Pace(session, host, checkpoint_every)
    with socket:
        while True:  # bounded: the session ends after max_seconds at the latest
            ended = "shutdown" if stop.is_set() else "lost" if lost.is_set() else None
            if ended is not None or session.end is not None:
                if ended == "shutdown" and pace.unsent:  # the next executor resumes from it
                    _send(socket, task_id, [], pace.counters())
                return ended or "limit"
            try:
                raw = socket.recv(timeout=max(0.0, min(_TICK, session.seconds_left(), pace.due())))
            except TimeoutError:
                if pace.unsent and pace.due() == 0:
                    _send(socket, task_id, [], pace.counters())
                continue
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code == _LEASE_LOST:
                    return "lost"
                raise ChannelDropped(type(exc).__name__) from exc
            answers = [wire(session.handle(request(item))) for item in _requests(task_id, raw)]
            if answers:
                pace.unsent = True
                _send(socket, task_id, answers, pace.counters() if pace.due() == 0 else None)


def _requests(task_id: str, raw: str | bytes) -> list[Any]:
    try:
        frame = json.loads(raw)
    except ValueError:
        frame = None
    items = frame.get("requests") if isinstance(frame, dict) else None
    if not isinstance(items, list):
        log.warning("session %s: the relay sent a frame without requests", task_id)
        return []
    return items


def _send(
    socket: ClientConnection,
    task_id: str,
    answers: list[dict[str, str]],
    counters: dict[str, Any] | None,
) -> None:
    frame: dict[str, Any] = {"answers": answers}
    if counters is not None:  # sealed ahead of the answers it goes with
        frame["checkpoint"] = counters
    try:
        socket.send(json.dumps(frame))
    except ConnectionClosed as exc:
        log.warning("session %s: %d answer(s) lost", task_id, len(answers))
        raise ChannelDropped(type(exc).__name__) from exc


class _Pace:
    """When the enclave's sealed counters next go to the relay."""

    def __init__(self, session: InferenceSession, host: Host, every: float) -> None:
        self._session = session
        self._host = host
        self._every = every
        self._last = -math.inf
        self.unsent = False
        """Answers left since the last checkpoint sent."""

    def due(self) -> float:
        """Seconds until a checkpoint may be sent (0: now); inf when none is waiting."""
        if not self.unsent:
            return math.inf
        return max(0.0, self._last + self._every - time.monotonic())

    def counters(self) -> dict[str, Any]:
        self._last, self.unsent = time.monotonic(), False
        return _sealed_counters(self._session, self._host)


def _sealed_counters(session: InferenceSession, host: Host) -> dict[str, Any]:
    """The session's checkpoint, sealed by the enclave, as the answers frame carries it."""
    captured = _Captured(host)
    session.checkpoint(captured)
    if captured.last is None:
        raise RuntimeError("the session sealed no checkpoint")
    sealed, sequence = captured.last
    return {"sealed": b64e(sealed), "sequence": sequence}


class _Captured:
    """``host``, but a checkpoint the enclave saves is kept here for the channel's frame."""

    def __init__(self, host: Host) -> None:
        self._host = host
        self.last: tuple[bytes, int] | None = None

    def save_checkpoint(self, sealed: bytes, sequence: int) -> None:
        self.last = (sealed, sequence)

    def read_input(self, slot: str) -> bytes:
        return self._host.read_input(slot)

    def read_function_source(self) -> bytes:
        return self._host.read_function_source()

    def load_checkpoint(self) -> bytes | None:
        return self._host.load_checkpoint()

    def emit_event(self, recipient: str, payload: str) -> None:
        self._host.emit_event(recipient, payload)
