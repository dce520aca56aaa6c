"""A member's long-lived channel to an inference session's relay (server/routes/channel.py).

One WebSocket, authenticated once with the member's bearer token when it opens: each request is
one frame out, its answer one frame back, with no authentication round trip in between. The
frames hold exactly what the HTTP routes carry (sealed, signed), so the answer is checked the
same way (client/_inference.py); an answer frame for a request not waited on (one given up on,
or one a hostile relay replays) is dropped.
"""

from __future__ import annotations

import json
import threading
import time
from functools import partial
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, WebSocketException

from teeflow.client._errors import ClientError
from teeflow.tls import ClientConnection, connect_websocket

__all__ = ["SessionChannel", "error_message"]


class SessionChannel:
    """One open channel to session ``task_id``; safe to share between threads (one request at
    a time goes through it)."""

    def __init__(self, http: httpx.Client, tls: Any, task_id: str) -> None:
        """Raises ClientError if the control plane refuses the channel (not signed in, not a
        participant of a running session) or cannot be reached."""
        self._open = partial(connect_websocket, http, f"/v1/tasks/{task_id}/channel", tls)
        self.task_id = task_id
        self._socket = self._connect()
        self._lock = threading.Lock()

    def _connect(self) -> ClientConnection:
        try:
            return self._open()
        except (OSError, WebSocketException) as exc:
            raise ClientError(f"cannot open a channel to session {self.task_id}: {exc}") from exc

    def close(self) -> None:
        self._socket.close()

    def exchange(self, body: dict[str, str], *, timeout: float) -> dict[str, Any]:
        """Send one request frame; return the frame answering it (``status`` "answered" or
        "error"). Raises ClientError if no answer comes within ``timeout`` seconds or the
        channel closes (with the control plane's reason)."""
        deadline = time.monotonic() + timeout
        request_id = body["request_id"]
        with self._lock:
            if self._socket.closed_while_idle():
                # The control plane closes a channel whose pings went unanswered while nobody
                # read it (or on a restart): open it again before this request goes out.
                self._socket.close()
                self._socket = self._connect()
            try:
                self._socket.send(json.dumps(body))
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ClientError(
                            f"no answer to request {request_id} within {timeout:.0f} s"
                        )
                    frame = _frame(self._socket.recv(timeout=remaining))
                    if frame.get("request_id") == request_id:
                        return frame
                    if "request_id" not in frame and frame.get("status") == "error":
                        raise ClientError(error_message(frame))
            except TimeoutError:
                raise ClientError(
                    f"no answer to request {request_id} within {timeout:.0f} s"
                ) from None
            except ConnectionClosed as exc:
                reason = exc.rcvd.reason if exc.rcvd is not None else ""
                raise ClientError(
                    f"the channel to session {self.task_id} closed"
                    + (f" ({reason})" if reason else "")
                    + "; open the session again"
                ) from exc


def _frame(raw: str | bytes) -> dict[str, Any]:
    try:
        frame = json.loads(raw)
    except ValueError:
        return {}
    return frame if isinstance(frame, dict) else {}


def error_message(frame: dict[str, Any]) -> str:
    """The control plane's message in an error frame."""
    error = frame.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return str(error["message"])
    return "the control plane refused the request"
