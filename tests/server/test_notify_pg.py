"""The PostgreSQL notifier: a notification sent in one control-plane process wakes the waiters of
another on the same database, only for its key, and a process ignores its own echo."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from teeflow.server.db import make_engine
from teeflow.server.notify import Notifier, task_key, wait_for
from teeflow.server.notify_pg import PostgresNotifier, notifier_for

pytestmark = pytest.mark.postgres


@pytest.fixture
def two_processes(postgres_url: str) -> Iterator[tuple[PostgresNotifier, PostgresNotifier]]:
    """Two notifiers on one database, as two control-plane processes hold them."""
    engines = [make_engine(postgres_url), make_engine(postgres_url)]
    a, b = (PostgresNotifier(engine) for engine in engines)
    try:
        for notifier in (a, b):
            assert notifier.listening.wait(30), "the listener did not connect"
        yield a, b
    finally:
        for notifier in (a, b):
            notifier.close()
        for engine in engines:
            engine.dispose()


def test_a_notification_in_one_process_wakes_a_waiter_in_another(
    two_processes: tuple[PostgresNotifier, PostgresNotifier],
) -> None:
    a, b = two_processes
    mine, other = task_key(uuid.uuid4().hex), task_key(uuid.uuid4().hex)

    async def scenario() -> tuple[bool, bool]:
        with a.subscribe(mine) as woken, a.subscribe(other) as not_woken:
            await asyncio.to_thread(b.notify, mine, "queue")
            return await wait_for(woken, 30.0), await wait_for(not_woken, 0.2)

    assert asyncio.run(scenario()) == (True, False)


def test_many_keys_are_split_under_the_payload_limit(
    two_processes: tuple[PostgresNotifier, PostgresNotifier],
) -> None:
    a, b = two_processes
    keys = [task_key(uuid.uuid4().hex) for _ in range(400)]  # ~15 kB of keys: two payloads

    async def scenario() -> bool:
        with a.subscribe(keys[-1]) as last:
            await asyncio.to_thread(b.notify, *keys)
            return await wait_for(last, 30.0)

    assert asyncio.run(scenario()) is True


def test_own_notification_wakes_local_waiters_without_the_channel(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    notifier = PostgresNotifier(engine)
    notifier.close()  # no listener, no sender: the local wake must not need them
    key = task_key(uuid.uuid4().hex)

    async def scenario() -> bool:
        with notifier.subscribe(key) as woken:
            notifier.notify(key)
            return await wait_for(woken, 5.0)

    try:
        assert asyncio.run(scenario()) is True
    finally:
        engine.dispose()


def test_sqlite_keeps_the_in_process_notifier(tmp_path: object) -> None:
    engine = make_engine("sqlite://")
    try:
        notifier = notifier_for(engine)
        assert type(notifier) is Notifier
    finally:
        engine.dispose()
