"""Fault and load fixtures: real platforms (control plane + sim executors as separate processes on
loopback), members made on demand, a fresh PostgreSQL schema when one is configured, and readers
of the processes' logs (HTTP status codes, lock errors, executor ids).

Tests that take minutes are marked ``stress``; ``pytest`` leaves them out (pyproject addopts) and
``make test-stress`` (``pytest -m stress``) runs them.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from e2e.conftest import PASSWORD, member_policy
from teeflow.client import Client, MemberHome, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.server.__main__ import ACCESS_LOG_ENV
from teeflow.server.launcher import LocalPlatform

# uvicorn's access log: 127.0.0.1:PORT - "GET /v1/tasks/ab12 HTTP/1.1" 200 OK
_ACCESS = re.compile(r'"(?P<method>[A-Z]+) (?P<path>\S+) HTTP/[0-9.]+" (?P<status>\d{3})')
_REGISTERED = re.compile(r"registered executor ([0-9a-f]{32})")
LOCK_ERRORS = ("database is locked", "deadlock detected", "QueuePool limit", "could not serialize")


def new_member(
    platform: LocalPlatform,
    home: Path,
    name: str,
    *,
    on_response: Callable[[httpx.Response], None] | None = None,
) -> Client:
    """A registered, signed-in member with its own keys, home and attestation policy;
    ``on_response`` sees every response it gets, from registration on."""
    keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
    client = Client(platform.url, keys=keys, home=MemberHome(home), policy=member_policy(platform))
    if on_response is not None:
        client.http.event_hooks["response"].append(on_response)
    try:
        client.register(name, PASSWORD)
        client.login(name, PASSWORD, remember=False)
    except BaseException:
        client.close()
        raise
    return client


def access_log(platform: LocalPlatform) -> list[tuple[str, str, int]]:
    """(method, path, status) of every request the control plane logged, across restarts."""
    text = (platform.data_dir / "logs" / "server.log").read_text(errors="replace")
    return [(m["method"], m["path"], int(m["status"])) for m in _ACCESS.finditer(text)]


def status_counts(platform: LocalPlatform) -> Counter[int]:
    return Counter(status for _, _, status in access_log(platform))


def server_errors(platform: LocalPlatform) -> list[str]:
    """Every 5xx the control plane answered, and every unhandled exception (by its last line)
    or lock error in any process's log."""
    found = [f"{m} {p} -> {s}" for m, p, s in access_log(platform) if s >= 500]
    for log in sorted((platform.data_dir / "logs").glob("*.log")):
        in_traceback = False
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("Traceback (most recent call last)"):
                in_traceback = True
            elif in_traceback and line and not line[0].isspace():
                in_traceback = False
                found.append(f"{log.name}: {line.strip()[:300]}")
            if any(marker in line for marker in LOCK_ERRORS):
                found.append(f"{log.name}: {line.strip()[:300]}")
    return found


def executor_ids(platform: LocalPlatform) -> dict[int, str]:
    """Executor process index -> the executor id it registered under (from its log)."""
    ids = {}
    for index in range(len(platform.executors)):
        log = platform.data_dir / "logs" / f"executor-{index}.log"
        found = _REGISTERED.findall(log.read_text(errors="replace")) if log.exists() else []
        if found:
            ids[index] = found[-1]
    return ids


def sqlite_row(platform: LocalPlatform, query: str, *args: object) -> tuple[object, ...] | None:
    """One row from the platform's SQLite database, read directly (as an operator could)."""
    with sqlite3.connect(platform.data_dir / "teeflow.db", timeout=30) as db:
        row: tuple[object, ...] | None = db.execute(query, args).fetchone()
        return row


@pytest.fixture(scope="session", autouse=True)
def _access_log() -> Iterator[None]:
    """The control planes these tests start log every request (access_log below reads it);
    session-scoped so that module-scoped platforms get it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(ACCESS_LOG_ENV, "1")
        yield


@pytest.fixture
def postgres_database_url(postgres_url: str) -> str:
    """A SQLAlchemy URL of a fresh, empty schema in the configured PostgreSQL, dropped after
    (tests/conftest.py's ``postgres_url``): the control plane migrates and uses it like a new
    deployment."""
    return postgres_url
