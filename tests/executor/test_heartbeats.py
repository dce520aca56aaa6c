"""The executor keeps every held lease alive from one thread (executor/worker.py Heartbeats)."""

from __future__ import annotations

import threading
import time
from collections import Counter

from teeflow.executor.worker import Heartbeats


class _Beats:
    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self._changed = threading.Condition()

    def beat(self, task_id: str) -> None:
        with self._changed:
            self.count[task_id] += 1
            self._changed.notify_all()

    def wait_for(self, task_id: str, beats: int) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: self.count[task_id] >= beats, timeout=30)


def test_a_task_due_before_the_others_is_beaten_without_waiting_for_them() -> None:
    beats = _Beats()
    heartbeats = Heartbeats(beats.beat)

    heartbeats.hold("slow", 3600.0)
    deadline = time.monotonic() + 30
    while heartbeats._wakes_at == float("inf") and time.monotonic() < deadline:
        time.sleep(0.001)  # until the thread sleeps for the hour
    heartbeats.hold("fast", 0.01)

    assert beats.wait_for("fast", 3)
    assert beats.count["slow"] == 0


def test_a_released_task_is_no_longer_beaten() -> None:
    beats = _Beats()
    heartbeats = Heartbeats(beats.beat)
    heartbeats.hold("done", 0.01)
    assert beats.wait_for("done", 2)

    heartbeats.release("done")
    after_release = beats.count["done"]
    heartbeats.hold("next", 0.01)

    assert beats.wait_for("next", 5)
    assert beats.count["done"] <= after_release + 1  # at most the beat already under way
