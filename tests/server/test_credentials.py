"""The per-request token lookups (store/_credentials.py) on SQLite and PostgreSQL: the same
records as the ORM reads, through the blocking and the event-loop paths alike, and never a stale
answer: a token signed out or an executor registered through another store (as another
control-plane process would) is seen by the very next lookup."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
from sqlalchemy.engine import make_url

from postgres_admin import admin_execute
from teeflow.server.store import Store

T = TypeVar("T")
T0 = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


@pytest.fixture
def other(store_url: str, store: Store) -> Iterator[Store]:
    """A second store on the same database (``store`` has migrated it)."""
    second = Store.from_url(store_url)
    try:
        yield second
    finally:
        second.close()


def _on_loop(store: Store, lookup: Awaitable[T]) -> T:
    """Await ``lookup`` on a fresh event loop, then close that loop's connection (as the app's
    shutdown does)."""

    async def run() -> T:
        try:
            return await lookup
        finally:
            await store.credentials.aclose()

    return asyncio.run(run())


def _user(store: Store, name: str = "alice") -> None:
    store.create_user(username=name, password_hash="h", sign_pk="s", enc_pk="e", now=T0)


def test_a_user_token_reads_the_same_through_both_paths(store: Store) -> None:
    _user(store)
    store.add_token(token_hash="t" * 64, username="alice", expires_at=T0 + timedelta(hours=1))

    blocking = store.credentials.user("t" * 64)
    on_loop = _on_loop(store, store.credentials.user_async("t" * 64))

    assert blocking is not None and blocking == on_loop
    user, expires_at = blocking
    assert user == store.get_user("alice")
    assert expires_at == T0 + timedelta(hours=1) and expires_at.utcoffset() == timedelta(0)
    assert user.created_at == T0 and user.created_at.utcoffset() == timedelta(0)
    assert store.credentials.user("u" * 64) is None
    assert _on_loop(store, store.credentials.user_async("u" * 64)) is None


def test_a_token_signed_out_through_another_store_is_refused_at_once(
    store: Store, other: Store
) -> None:
    _user(store)
    store.add_token(token_hash="t" * 64, username="alice", expires_at=T0 + timedelta(hours=1))

    async def lookups() -> list[bool]:
        seen = [await store.credentials.user_async("t" * 64) is not None]
        other.revoke_token("t" * 64)
        seen.append(await store.credentials.user_async("t" * 64) is not None)
        return seen

    assert _on_loop(store, lookups()) == [True, False]
    assert store.credentials.user("t" * 64) is None


@pytest.mark.parametrize("key_id", [None, {"measurement": "m", "epoch": 2, "signature": "s"}])
def test_an_executor_reads_the_same_through_both_paths(
    store: Store, other: Store, key_id: dict[str, object] | None
) -> None:
    assert store.credentials.executor("x" * 64) is None  # before: the reader is open already
    other.register_executor(
        executor_id="e1", tee="sim", measurement="m" * 64,
        evidence={"quote": "q", "nested": {"a": [1, 2]}}, public_keys={"enc": "pk"},
        token_hash="x" * 64, now=T0, key_id=key_id,
    )  # fmt: skip

    blocking = store.credentials.executor("x" * 64)
    on_loop = _on_loop(store, store.credentials.executor_async("x" * 64))

    assert blocking is not None and blocking == on_loop == store.get_executor("e1")
    assert blocking.key_id == key_id
    assert blocking.registered_at == T0 and blocking.last_seen_at.utcoffset() == timedelta(0)
    assert _on_loop(store, store.credentials.executor_async("y" * 64)) is None


@pytest.mark.postgres
def test_the_event_loop_connection_is_reopened_after_the_server_dropped_it(
    postgres_url: str,
) -> None:
    store = Store.from_url(postgres_url)
    store.migrate()
    _user(store)
    store.add_token(token_hash="t" * 64, username="alice", expires_at=T0 + timedelta(hours=1))

    async def lookups() -> list[bool]:
        seen = [await store.credentials.user_async("t" * 64) is not None]
        connection = store.credentials._pg[asyncio.get_running_loop()]
        terminate = f"SELECT pg_terminate_backend({int(connection.info.backend_pid)})"
        admin_execute(make_url(postgres_url), terminate)
        seen.append(await store.credentials.user_async("t" * 64) is not None)
        return seen

    try:
        assert _on_loop(store, lookups()) == [True, True]
    finally:
        store.close()
