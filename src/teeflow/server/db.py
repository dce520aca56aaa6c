"""Engines and schema migrations for the control plane's SQL store.

One code path for both deployments: SQLite (embedded, one machine) and PostgreSQL (production).

A SQLite database file is created mode 0600. SQLite connections get ``journal_mode=WAL`` (readers
never block the writer), a ``busy_timeout`` (writers queue instead of failing at once) and
``foreign_keys=ON``. The pysqlite driver's own transaction handling is switched off so that
SQLAlchemy emits ``BEGIN`` itself; a connection with the execution option
``sqlite_begin="IMMEDIATE"`` takes the database write lock when its transaction starts, which is how
the store serialises its read-modify-write transactions (see the SQLAlchemy "pysqlite serializable
isolation" recipe).

The schema comes only from the Alembic revisions in ``server/migrations``; :func:`upgrade` runs them
from a :class:`alembic.config.Config` built in code, so it works from an installed package.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import StaticPool

__all__ = [
    "MIGRATIONS_DIR",
    "PING_AFTER_IDLE_S",
    "SQLITE_BEGIN_OPTION",
    "alembic_config",
    "current_revision",
    "is_sqlite",
    "is_sqlite_url",
    "make_engine",
    "upgrade",
    "write_engine",
]

PING_AFTER_IDLE_S = 10.0
"""A pooled PostgreSQL connection idle this long is pinged before its next use."""
_IDLE_SINCE = "teeflow_idle_since"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BEGIN_OPTION = "sqlite_begin"
# Any fixed 64-bit key: serialises concurrent `upgrade` calls on one PostgreSQL database.
_MIGRATION_LOCK_KEY = 0x7465_6566_6C6F_7701


def _private_database_file(path: Path) -> None:
    """Create the SQLite file mode 0600 (SQLite gives its -wal and -shm files the database's
    mode), or clear the group and other bits of one made before; a missing directory is left to
    SQLite's own error."""
    if not path.parent.is_dir():
        return
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if file.stat().st_mode & 0o077:
                file.chmod(0o600)


def make_engine(
    url: str,
    *,
    busy_timeout_ms: int = 30_000,
    echo: bool = False,
    ping_after_idle_s: float = PING_AFTER_IDLE_S,
) -> Engine:
    """Create an engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    A pooled PostgreSQL connection that sat idle for ``ping_after_idle_s`` seconds or more is
    pinged before use and replaced if the server dropped it (:func:`_ping_when_idle`). No
    connection is opened here; nothing happens at import time.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        server_engine = create_engine(parsed, echo=echo)
        _ping_when_idle(server_engine, ping_after_idle_s)
        return server_engine

    kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
    if parsed.database in (None, "", ":memory:"):
        # One shared connection, or every checkout would see its own empty database.
        kwargs["poolclass"] = StaticPool
    else:
        _private_database_file(Path(parsed.database))
    engine = create_engine(parsed, echo=echo, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see _on_begin)
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA synchronous = NORMAL")  # durable with WAL except on power loss
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"unknown SQLite BEGIN mode {mode!r}")
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _ping_when_idle(engine: Engine, after_s: float) -> None:
    """Ping a pooled connection on checkout only if it sat idle ``after_s`` seconds or more.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: one more round trip per transaction,
    about 0.1-0.2 ms of the control plane's CPU each. A connection the server closed (a restart,
    an idle timeout, a failover) is found by the ping after any quiet spell; one dropped while the
    pool is busy fails the request that meets it, and SQLAlchemy then refreshes the whole pool
    (its disconnect handling), so the next requests get new connections.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop(_IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since < after_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the driver's own error type: any means the link is gone
            # The pool invalidates this connection and checks out another (SQLAlchemy pool events).
            raise DisconnectionError("pooled connection was closed while idle") from exc


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def is_sqlite_url(url: str) -> bool:
    """Whether ``url`` names a SQLite database (opens nothing)."""
    return make_url(url).get_backend_name() == "sqlite"


def write_engine(engine: Engine) -> Engine:
    """The engine to use for read-modify-write transactions.

    On SQLite its transactions start with ``BEGIN IMMEDIATE`` (take the write lock up front, so two
    writers never both read and then both fail to upgrade their lock); elsewhere it is ``engine``.
    """
    if is_sqlite(engine):
        return engine.execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"})
    return engine


def alembic_config() -> Config:
    """An Alembic config pointing at the packaged migrations; no ini file needed."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def upgrade(target: str | Engine, revision: str = "head") -> None:
    """Run ``alembic upgrade <revision>`` on ``target`` (a URL or an engine)."""
    engine = make_engine(target) if isinstance(target, str) else target
    try:
        with write_engine(engine).begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    finally:
        if isinstance(target, str):
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The schema revision ``engine``'s database is at, or None before the first migration."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
