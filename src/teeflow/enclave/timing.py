"""Wall (and thread CPU) time per phase of a task (checks, io, crypto, function), and pacing of
what it sends."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from teeflow.enclave.task import Host

__all__ = ["Pace", "PhaseTimer", "TimedHost"]


class PhaseTimer:
    """Wall time per phase of one task: checks, io (host calls), crypto, function; and the
    CPU time of the timing thread per phase (``cpu``), which other processes sharing the cores
    do not inflate as they do wall time.

    Phases nest: time in an inner phase (a checkpoint sealed and saved from inside the function)
    counts for the inner phase only, so the phases add up to the task's wall time.
    """

    def __init__(self) -> None:
        self.totals: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._stack: list[tuple[str, float, float]] = []

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        now, cpu = time.perf_counter(), time.thread_time()
        if self._stack:
            self._add(*self._stack[-1], now, cpu)
        self._stack.append((name, now, cpu))
        try:
            yield
        finally:
            end, end_cpu = time.perf_counter(), time.thread_time()
            self._add(*self._stack.pop(), end, end_cpu)
            if self._stack:
                self._stack[-1] = (self._stack[-1][0], end, end_cpu)

    def _add(self, name: str, since: float, since_cpu: float, now: float, cpu: float) -> None:
        self.totals[name] = self.totals.get(name, 0.0) + now - since
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu - since_cpu


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
