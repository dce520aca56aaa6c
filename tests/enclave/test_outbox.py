"""The outbox that uploads checkpoints and progress while the function goes on."""

from __future__ import annotations

import threading

import pytest

from teeflow.enclave.outbox import Outbox


def test_calls_run_in_submission_order_and_drain_waits_for_all() -> None:
    box = Outbox()
    seen: list[int] = []
    try:
        for i in range(50):
            box.submit(lambda i=i: seen.append(i))
        box.drain()
        assert seen == list(range(50))
        assert box.calls == 50
    finally:
        box.close()


def test_a_failed_call_is_raised_to_the_caller_and_later_calls_are_dropped() -> None:
    box = Outbox()
    seen: list[str] = []
    release = threading.Event()

    def fails() -> None:
        release.wait()
        raise ConnectionError("control plane gone")

    try:
        box.submit(fails)
        box.submit(lambda: seen.append("after the failure"))  # queued behind the failing call
        release.set()
        with pytest.raises(ConnectionError, match="control plane gone"):
            box.drain()
        with pytest.raises(ConnectionError):
            box.submit(lambda: seen.append("submitted later"))
        with pytest.raises(ConnectionError):
            box.drain()  # every drain says so, not only the first
        assert seen == []
    finally:
        box.close()


def test_submit_blocks_while_the_queue_is_full() -> None:
    box = Outbox(depth=1)
    release = threading.Event()
    started = threading.Event()
    submitted: list[int] = []

    def slow() -> None:
        started.set()
        release.wait()

    try:
        box.submit(slow)
        assert started.wait(30)  # in flight: the queue is empty again
        box.submit(lambda: None)  # waits in the queue
        third = threading.Thread(target=lambda: (box.submit(lambda: None), submitted.append(3)))
        third.start()
        third.join(0.2)
        assert submitted == []  # still blocked: at most one call waits behind the one in flight
        release.set()
        third.join(30)
        assert submitted == [3]
        box.drain()
    finally:
        release.set()
        box.close()
