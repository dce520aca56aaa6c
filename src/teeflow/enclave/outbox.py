"""Host calls a running function does not wait for: sealed checkpoints and progress events.

A training loop that reports progress and checkpoints blocked on each upload (an HTTP round trip
to the control plane, tens of milliseconds on a loaded machine). The :class:`Outbox` hands those
calls to one background thread, in order, so the next epoch trains while the last checkpoint
uploads. What leaves is already sealed; the thread only moves ciphertext.

Bounds and failure: at most one call waits behind the one in flight (``submit`` blocks until
there is room), so memory holds at most two sealed payloads. A call that fails is not retried
here (the host retries); its exception is raised to the function at its next ``submit`` and by every
``drain``, as if the call had been made in place one step later; later calls are dropped.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

__all__ = ["Outbox"]

Call = Callable[[], None]


class Outbox:
    """Runs submitted host calls one at a time, in order, on a background thread."""

    def __init__(self, *, depth: int = 1) -> None:
        self._calls: queue.Queue[Call | None] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self.seconds = 0.0
        """Wall time the background thread spent in calls (overlapping the function's time)."""
        self.calls = 0
        # Started by the first submit: most tasks (scoring, short functions) never submit.
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        while True:
            call = self._calls.get()
            try:
                if call is None:
                    return
                if self._error is None:  # after a failure, later calls are dropped
                    started = time.perf_counter()
                    try:
                        call()
                    except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                        self._error = exc
                    self.seconds += time.perf_counter() - started
                    self.calls += 1
            finally:
                self._calls.task_done()

    def _raise_pending(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, call: Call) -> None:
        """Queue ``call``; blocks while the queue is full. Raises an earlier call's error."""
        self._raise_pending()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="teeflow-outbox", daemon=True)
            self._thread.start()
        self._calls.put(call)

    def drain(self) -> None:
        """Wait until every queued call ran; raises the first error one of them raised."""
        self._calls.join()
        self._raise_pending()

    def close(self) -> None:
        """Run what is queued, then stop the thread (errors are dropped: call ``drain`` first)."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
