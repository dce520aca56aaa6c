"""Store fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``TEEFLOW_TEST_POSTGRES_URL`` (``.ci/postgres.sh`` starts a server and prints
it; ``make test`` sets it). Each test gets a fresh schema of its own (``postgres_url`` in
tests/conftest.py), migrated by the Alembic revisions like a new deployment, and dropped after.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from teeflow.server.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'teeflow.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated, empty store (schema only through the Alembic revisions)."""
    store = Store.from_url(store_url)
    store.migrate()
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def members(store: Store) -> Store:
    """The store with members ``alice`` and ``bob``."""
    now = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
    for name in ("alice", "bob"):
        store.create_user(username=name, password_hash="h", sign_pk="s", enc_pk="e", now=now)
    return store
