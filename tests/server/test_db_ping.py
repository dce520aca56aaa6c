"""Pooled PostgreSQL connections are pinged only after they sat idle (server/db.py): one the
server closed meanwhile is replaced without failing the request; without the ping the request
that meets it fails once, and the pool is refreshed for the next."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from postgres_admin import admin_execute
from teeflow.server.db import make_engine
from teeflow.server.store import Store


def _store_with_a_dropped_connection(url: str, ping_after_idle_s: float) -> Store:
    """A migrated store whose one pooled connection the server has closed."""
    store = Store(make_engine(url, ping_after_idle_s=ping_after_idle_s))
    store.migrate()
    store.engine.dispose()  # only the connection below stays in the pool
    with store.engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        connection.rollback()
    admin_execute(make_url(url), f"SELECT pg_terminate_backend({int(pid)})")
    return store


@pytest.mark.postgres
def test_a_connection_dropped_while_idle_is_replaced_before_use(postgres_url: str) -> None:
    store = _store_with_a_dropped_connection(postgres_url, ping_after_idle_s=0)
    try:
        assert store.get_user("nobody") is None  # no error: the ping found it gone
    finally:
        store.close()


@pytest.mark.postgres
def test_without_the_ping_one_request_fails_and_the_pool_recovers(postgres_url: str) -> None:
    store = _store_with_a_dropped_connection(postgres_url, ping_after_idle_s=3600)
    try:
        with pytest.raises(OperationalError):
            store.get_user("nobody")
        assert store.get_user("nobody") is None
    finally:
        store.close()
