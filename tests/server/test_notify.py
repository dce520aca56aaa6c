"""The long-poll notifier: wakes waiters from any thread, only for their key, and never loses a
change that lands between a waiter's read and its wait."""

from __future__ import annotations

import asyncio
import threading

from teeflow.server.notify import Notifier, task_key, wait_for


def test_notify_from_another_thread_wakes_only_that_key() -> None:
    async def scenario() -> tuple[bool, bool]:
        notifier = Notifier()
        with notifier.subscribe(task_key("a")) as a, notifier.subscribe(task_key("b")) as b:
            threading.Thread(target=notifier.notify, args=(task_key("a"),)).start()
            woke_a = await wait_for(a, 5.0)
            woke_b = await wait_for(b, 0.05)
        assert notifier.waiting(task_key("a")) == notifier.waiting(task_key("b")) == 0
        return woke_a, woke_b

    assert asyncio.run(scenario()) == (True, False)


def test_a_change_between_read_and_wait_is_not_lost() -> None:
    async def scenario() -> bool:
        notifier = Notifier()
        with notifier.subscribe("queue") as woken:
            notifier.notify("queue")  # lands after the subscription, before the wait
            await asyncio.sleep(0)
            return await wait_for(woken, 0.5)

    assert asyncio.run(scenario()) is True


def test_wait_times_out_without_a_notification() -> None:
    async def scenario() -> bool:
        notifier = Notifier()
        with notifier.subscribe("queue") as woken:
            return await wait_for(woken, 0.05)

    assert asyncio.run(scenario()) is False
    Notifier().notify("nobody-waits")  # nothing subscribed: a no-op
