"""A notifier shared by every control-plane process on one PostgreSQL database (LISTEN/NOTIFY).

Several control-plane processes (``teeflow server --workers N``, or hosts behind a load balancer)
each hold their own long-polls. A change made through one process must wake the waiters of all of
them, or a member waiting in process A sees a task finished through process B only when its wait
times out. :class:`PostgresNotifier` keeps the in-process notifier's contract (server/notify.py:
a notification is a hint, waiters re-read the store, every wait has a timeout) and adds the
database's own channel:

- ``notify(*keys)`` wakes this process's waiters at once, then sends one ``pg_notify`` carrying the
  keys and this process's origin tag (its own echo is ignored);
- a listener thread holds one connection with ``LISTEN`` and wakes this process's waiters on every
  notification from another process;
- a lost connection is reopened; on every (re)connect every waiter is woken once, since
  notifications sent meanwhile are lost (a spurious wake costs one re-read).

PostgreSQL delivers a notification to listeners only after the sending transaction commits
(PostgreSQL docs, NOTIFY); ``notify`` is called after the store's transaction committed and sends
in a transaction of its own, so a woken process always reads the change.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import psycopg
from sqlalchemy import Engine

from teeflow.server.notify import Notifier

__all__ = ["CHANNEL", "PostgresNotifier", "notifier_for"]

log = logging.getLogger("teeflow.server.notify")

CHANNEL = "teeflow_notify"
"""The LISTEN/NOTIFY channel; a payload is ``ORIGIN KEY [KEY ...]``, keys separated by newlines."""

_MAX_PAYLOAD = 7900
"""PostgreSQL refuses payloads of 8000 bytes or more; longer key lists are sent in parts."""


class PostgresNotifier(Notifier):
    """:class:`Notifier` whose notifications also reach every other process on the database.

    ``engine`` is the store's PostgreSQL engine: its URL (and any ``options``, e.g. a
    ``search_path``) opens the two connections this holds, outside the engine's pool: one that
    listens (in a daemon thread) and one that sends. ``reconnect_seconds``: the pause before a lost
    listener connection is reopened. Call :meth:`close` at shutdown.
    """

    def __init__(self, engine: Engine, *, reconnect_seconds: float = 1.0) -> None:
        super().__init__()
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        self._connect_args: tuple[list[Any], dict[str, Any]] = (list(cargs), dict(cparams))
        self._origin = uuid.uuid4().hex[:16]
        self._reconnect_seconds = reconnect_seconds
        self._send_lock = threading.Lock()
        self._sender: psycopg.Connection[Any] | None = None
        self._closed = threading.Event()
        self.listening = threading.Event()
        """Set while the listener holds its ``LISTEN`` (for tests and health checks)."""
        self._thread = threading.Thread(target=self._listen, name="teeflow-pg-notify", daemon=True)
        self._thread.start()

    def _connect(self) -> psycopg.Connection[Any]:
        cargs, cparams = self._connect_args
        return psycopg.connect(*cargs, **{**cparams, "autocommit": True})

    def notify(self, *keys: str) -> None:
        """Wake this process's waiters on ``keys``, then every other process's (best effort:
        a failed send is logged; the other processes' waits still end by timeout)."""
        super().notify(*keys)
        if not keys or self._closed.is_set():
            return
        for payload in _payloads(self._origin, keys):
            try:
                with self._send_lock:
                    if self._sender is None or self._sender.closed:
                        self._sender = self._connect()
                    self._sender.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            except psycopg.Error as exc:
                log.warning("could not send a notification to other processes: %s", exc)
                self._drop_sender()
                return

    def close(self) -> None:
        """Stop listening and close both connections; waits for the listener thread."""
        self._closed.set()
        self._thread.join(timeout=10)
        self._drop_sender()

    def _drop_sender(self) -> None:
        with self._send_lock:
            if self._sender is not None:
                self._sender.close()
                self._sender = None

    def _listen(self) -> None:
        while not self._closed.is_set():
            try:
                with self._connect() as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._wake(None)  # whatever was sent while not listening is lost
                    while not self._closed.is_set():
                        for note in connection.notifies(timeout=0.5):
                            self._receive(note.payload)
            except psycopg.Error as exc:
                if not self._closed.is_set():
                    log.warning("notification channel lost (%s); reconnecting", exc)
            finally:
                self.listening.clear()
            self._closed.wait(self._reconnect_seconds)

    def _receive(self, payload: str) -> None:
        origin, _, keys = payload.partition(" ")
        if origin != self._origin and keys:
            self._wake(tuple(keys.split("\n")))


def _payloads(origin: str, keys: tuple[str, ...]) -> list[str]:
    """``ORIGIN key\\nkey...`` strings, each under PostgreSQL's payload limit."""
    payloads: list[str] = []
    current: list[str] = []
    size = len(origin) + 1
    for key in keys:
        if current and size + len(key) + 1 > _MAX_PAYLOAD:
            payloads.append(f"{origin} " + "\n".join(current))
            current, size = [], len(origin) + 1
        current.append(key)
        size += len(key) + 1
    if current:
        payloads.append(f"{origin} " + "\n".join(current))
    return payloads


def notifier_for(engine: Engine) -> Notifier:
    """The notifier for a store on ``engine``: shared across processes on PostgreSQL, in-process
    on SQLite (one process only: ``teeflow server`` refuses several workers on SQLite)."""
    if engine.dialect.name == "postgresql":
        return PostgresNotifier(engine)
    return Notifier()
