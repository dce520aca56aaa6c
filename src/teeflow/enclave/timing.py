"""Wall time per phase of a task (checks, io, crypto, function), and pacing of what it sends."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from teeflow.enclave.task import Host

__all__ = ["Pace", "PhaseTimer", "TimedHost"]


class PhaseTimer:
    """Wall time per phase of one task: checks, io (host calls), crypto, function.

    Phases nest: time in an inner phase (a checkpoint sealed and saved from inside the function)
    counts for the inner phase only, so the phases add up to the task's wall time.
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self._stack: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        now = time.perf_counter()
        if self._stack:
            outer, since = self._stack[-1]
            self.totals[outer] = self.totals.get(outer, 0.0) + now - since
        self._stack.append((name, now))
        try:
            yield
        finally:
            end = time.perf_counter()
            _, since = self._stack.pop()
            self.totals[name] = self.totals.get(name, 0.0) + end - since
            if self._stack:
                self._stack[-1] = (self._stack[-1][0], end)


class Pace:
    """Lets something happen at most once per ``interval`` seconds (always when it is 0)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._last = -float("inf")

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval

    def mark(self) -> None:
        self._last = time.monotonic()


class TimedHost:
    """The host, with every call counted as ``io``."""

    def __init__(self, host: Host, timer: PhaseTimer) -> None:
        self._host = host
        self._timer = timer
        self.inner = host
        """The host itself, for calls made off the timed thread."""

    def read_input(self, slot: str) -> bytes:
        with self._timer.phase("io"):
            return self._host.read_input(slot)

    def read_function_source(self) -> bytes:
        with self._timer.phase("io"):
            return self._host.read_function_source()

    def load_checkpoint(self) -> bytes | None:
        with self._timer.phase("io"):
            return self._host.load_checkpoint()

    def save_checkpoint(self, sealed: bytes, sequence: int) -> None:
        with self._timer.phase("io"):
            self._host.save_checkpoint(sealed, sequence)

    def emit_event(self, recipient: str, payload: str) -> None:
        with self._timer.phase("io"):
            self._host.emit_event(recipient, payload)
