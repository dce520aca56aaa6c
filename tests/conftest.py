"""Shared fixtures for the whole test suite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import URL, make_url

from postgres_admin import POSTGRES_ENV, admin_execute

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_TESTDATA = REPO_ROOT.parent / "shared" / "testdata"


@pytest.fixture
def teeflow_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated member home, so no test touches ~/.teeflow."""
    home = tmp_path / "home"
    monkeypatch.setenv("TEEFLOW_HOME", str(home))
    return home


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
