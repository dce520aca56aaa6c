"""Wake long-polling requests when something they wait for may have changed.

A notification is only a hint that the store may have changed: every waiter re-reads the store
after waking, and every wait has a timeout, so a lost or spurious notification costs latency, never
correctness. That also keeps several control-plane processes behind one database correct: a change
made by another process is seen when the wait times out. On PostgreSQL the processes share their
notifications through ``LISTEN/NOTIFY`` (server/notify_pg.py), so they keep the latency too.

Waiters subscribe *before* they read the store, so a change that lands between the read and the
wait still wakes them::

    with notifier.subscribe(key) as woken:
        state = await run_in_threadpool(read_state)
        if not ready(state):
            await woken.wait(timeout)

``notify`` may be called from any thread (the synchronous route handlers run in a thread pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

__all__ = ["QUEUE", "Notifier", "task_key"]

QUEUE = "queue"
"""Key notified when a task may have become leasable."""


def task_key(task_id: str) -> str:
    """Key notified when a task's state or events may have changed."""
    return f"task:{task_id}"


class Notifier:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    @contextlib.contextmanager
    def subscribe(self, key: str) -> Iterator[asyncio.Event]:
        """An event set by the next ``notify(key)``; call from a coroutine on the server's loop."""
        entry = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.setdefault(key, set()).add(entry)
        try:
            yield entry[1]
        finally:
            with self._lock:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(entry)
                    if not waiters:
                        del self._waiters[key]

    def notify(self, *keys: str) -> None:
        """Wake everyone subscribed to any of ``keys``; safe from any thread."""
        self._wake(keys)

    def close(self) -> None:
        """Release what the notifier holds (nothing here; a shared channel's connections)."""

    def _wake(self, keys: tuple[str, ...] | None) -> None:
        """Set the events of this process's waiters on ``keys`` (None: every waiter)."""
        with self._lock:
            if keys is None:
                woken = [entry for entries in self._waiters.values() for entry in entries]
            else:
                woken = [entry for key in keys for entry in self._waiters.get(key, ())]
        for loop, event in woken:
            with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to wake
                loop.call_soon_threadsafe(event.set)

    def waiting(self, key: str) -> int:
        """How many waiters are subscribed to ``key`` (for tests and metrics)."""
        with self._lock:
            return len(self._waiters.get(key, ()))


async def wait_for(event: asyncio.Event, timeout: float) -> bool:
    """Wait until ``event`` is set or ``timeout`` seconds pass; True if it was set."""
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        return False
    return True
