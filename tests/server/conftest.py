"""Store fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``TEEFLOW_TEST_POSTGRES_URL`` (``.ci/postgres.sh`` starts a server and prints
it; ``make test`` sets it). Each test gets a fresh schema of its own, migrated by the Alembic
revisions like a new deployment, and dropped after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from postgres_admin import POSTGRES_ENV, admin_execute
from teeflow.server.store import Store


@pytest.fixture(scope="session")
def postgres_admin_url() -> URL:
    raw = os.environ.get(POSTGRES_ENV)
    if not raw:
        pytest.skip(f"PostgreSQL not configured: set {POSTGRES_ENV} (make test does this)")
    return make_url(raw)


@pytest.fixture
def postgres_url(postgres_admin_url: URL) -> Iterator[str]:
    """A fresh, empty schema in the configured database, dropped after the test.

    Connections made from the URL put the schema first on their ``search_path``, so the store and
    its migrations see nothing else (a schema is much cheaper than a database per test).
    """
    schema = f"teeflow_t_{uuid.uuid4().hex[:12]}"
    admin_execute(postgres_admin_url, f'CREATE SCHEMA "{schema}"')
    try:
        url = postgres_admin_url.update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        admin_execute(postgres_admin_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


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
