"""The two lookups every request makes: a member's token to its user, an executor's token to its
executor, on connections of their own and without SQLAlchemy's per-statement machinery.

Every request authenticates, so these two primary-key lookups run far more often than anything
else; through a pooled SQLAlchemy connection each cost about 0.35 ms of the control plane's CPU, the
query itself a few microseconds of it. Here each is one fixed SQL string on a driver connection:

- SQLite (a database file): one ``sqlite3`` connection per process in autocommit mode, shared
  under a lock. The caller may run it on the event loop: a WAL reader never waits for a writer,
  and the lookup reads two B-tree pages the OS already caches, which is less time than handing
  the call to a worker thread and back (docs/decisions/0028-authentication-on-the-event-loop.md).
- PostgreSQL: :meth:`CredentialReader.user_async` and :meth:`CredentialReader.executor_async` use
  one psycopg ``AsyncConnection`` per event loop (autocommit), so the network round trip never
  blocks the loop; the synchronous methods (WebSocket admission runs them in a worker thread) use
  the store's own pool through SQLAlchemy Core.

Nothing is cached: every lookup reads the committed state, so a token signed out, or a user or
executor removed, is refused by the next request in every process at once.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import psycopg
from sqlalchemy import Engine, select

from teeflow.server.models import ExecutorRow, TokenRow, UserRow
from teeflow.server.store._records import ExecutorRecord, UserRecord

__all__ = ["CredentialReader", "UserToken"]

UserToken = tuple[UserRecord, datetime]
"""A signed-in user and the expiry of the token (the caller checks it)."""

_USER = (
    "SELECT u.username, u.password_hash, u.sign_pk, u.enc_pk, u.created_at, t.expires_at "
    "FROM tokens t JOIN users u ON u.username = t.username "
    "WHERE t.token_hash = {p} AND NOT t.revoked"
)
_EXECUTOR = (
    "SELECT executor_id, tee, measurement, evidence, public_keys, token_hash, registered_at, "
    "last_seen_at, key_id FROM executors WHERE token_hash = {p}"
)


def _utc(value: Any) -> datetime:
    """A stored timestamp as aware UTC: SQLite holds naive UTC text, PostgreSQL timestamptz."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json(value: Any) -> Any:
    """A stored JSON value: SQLite holds text, psycopg already decodes JSONB."""
    return json.loads(value) if isinstance(value, str | bytes) else value


def _user(row: tuple[Any, ...]) -> UserToken:
    username, password_hash, sign_pk, enc_pk, created_at, expires_at = row
    user = UserRecord(
        username=username,
        password_hash=password_hash,
        sign_pk=sign_pk,
        enc_pk=enc_pk,
        created_at=_utc(created_at),
    )
    return user, _utc(expires_at)


def _executor(row: tuple[Any, ...]) -> ExecutorRecord:
    executor_id, tee, measurement, evidence, public_keys, token_hash, registered, seen, key_id = row
    key = _json(key_id)
    return ExecutorRecord(
        executor_id=executor_id,
        tee=tee,
        measurement=measurement,
        evidence=dict(_json(evidence)),
        public_keys=dict(_json(public_keys)),
        token_hash=token_hash,
        registered_at=_utc(registered),
        last_seen_at=_utc(seen),
        key_id=None if key is None else dict(key),
    )


class CredentialReader:
    """Token lookups for ``engine``'s database. Thread-safe; call :meth:`close` at shutdown."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._sqlite: sqlite3.Connection | None = None
        self._sqlite_path: str | None = None
        self._pg: dict[asyncio.AbstractEventLoop, psycopg.AsyncConnection[Any]] = {}
        database = engine.url.database
        if engine.dialect.name == "sqlite" and database not in (None, "", ":memory:"):
            self._sqlite_path = database
        self._pg_async = engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"

    # -- synchronous (any thread; on SQLite also the event loop) --------------------------------

    def user(self, token_hash: str) -> UserToken | None:
        """``(user, token expiry)``; None if the token is unknown or revoked."""
        row = self._fetch_sync(_USER, token_hash, self._core_user)
        return None if row is None else _user(row)

    def executor(self, token_hash: str) -> ExecutorRecord | None:
        """The executor registered with the token; None if none is."""
        row = self._fetch_sync(_EXECUTOR, token_hash, self._core_executor)
        return None if row is None else _executor(row)

    @property
    def inline(self) -> bool:
        """Whether the synchronous lookups are local and short enough for the event loop."""
        return self._sqlite_path is not None

    # -- asynchronous (PostgreSQL: never blocks the loop) ---------------------------------------

    async def user_async(self, token_hash: str) -> UserToken | None:
        """:meth:`user` without a worker thread where that is safe (see the module's note)."""
        if self._pg_async:
            row = await self._fetch_pg(_USER, token_hash)
            return None if row is None else _user(row)
        if self.inline:
            return self.user(token_hash)
        found: UserToken | None = await anyio.to_thread.run_sync(self.user, token_hash)
        return found

    async def executor_async(self, token_hash: str) -> ExecutorRecord | None:
        """:meth:`executor` without a worker thread where that is safe."""
        if self._pg_async:
            row = await self._fetch_pg(_EXECUTOR, token_hash)
            return None if row is None else _executor(row)
        if self.inline:
            return self.executor(token_hash)
        found: ExecutorRecord | None = await anyio.to_thread.run_sync(self.executor, token_hash)
        return found

    async def aclose(self) -> None:
        """Close this event loop's PostgreSQL connection (the app's shutdown)."""
        connection = self._pg.pop(asyncio.get_running_loop(), None)
        if connection is not None:
            await connection.close()

    def close(self) -> None:
        """Close the SQLite connection (PostgreSQL ones close with their loop's :meth:`aclose`)."""
        with self._lock:
            if self._sqlite is not None:
                self._sqlite.close()
                self._sqlite = None

    # -- drivers ---------------------------------------------------------------------------------

    def _fetch_sync(
        self, sql: str, token_hash: str, core: Callable[[str], tuple[Any, ...] | None]
    ) -> tuple[Any, ...] | None:
        if self._sqlite_path is None:
            return core(token_hash)
        with self._lock:
            if self._sqlite is None:
                self._sqlite = _open_sqlite(self._sqlite_path)
            row: tuple[Any, ...] | None = self._sqlite.execute(
                sql.format(p="?"), (token_hash,)
            ).fetchone()
            return row

    def _core_user(self, token_hash: str) -> tuple[Any, ...] | None:
        users, tokens = UserRow.__table__, TokenRow.__table__
        query = (
            select(
                users.c.username,
                users.c.password_hash,
                users.c.sign_pk,
                users.c.enc_pk,
                users.c.created_at,
                tokens.c.expires_at,
            )
            .join(tokens, tokens.c.username == users.c.username)
            .where(tokens.c.token_hash == token_hash, tokens.c.revoked.is_(False))
        )
        return self._core_one(query)

    def _core_executor(self, token_hash: str) -> tuple[Any, ...] | None:
        e = ExecutorRow.__table__.c
        query = select(
            e.executor_id,
            e.tee,
            e.measurement,
            e.evidence,
            e.public_keys,
            e.token_hash,
            e.registered_at,
            e.last_seen_at,
            e.key_id,
        ).where(e.token_hash == token_hash)
        return self._core_one(query)

    def _core_one(self, query: Any) -> tuple[Any, ...] | None:
        with self._engine.connect() as connection:
            try:
                row = connection.execute(query).first()
            finally:
                connection.rollback()
        return None if row is None else tuple(row)

    async def _fetch_pg(self, sql: str, token_hash: str) -> tuple[Any, ...] | None:
        loop = asyncio.get_running_loop()
        for attempt in (1, 2):
            connection = self._pg.get(loop)
            if connection is None or connection.closed:
                connection = await self._connect_pg()
                current = self._pg.get(loop)
                if current is not None and not current.closed:  # another request won the race
                    await connection.close()
                    connection = current
                self._pg[loop] = connection
            try:
                cursor = await connection.execute(sql.format(p="%s"), (token_hash,))
                return await cursor.fetchone()
            except psycopg.OperationalError:
                # The database restarted or dropped the connection: reconnect once, then fail.
                if self._pg.get(loop) is connection:
                    del self._pg[loop]
                await connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect_pg(self) -> psycopg.AsyncConnection[Any]:
        cargs, cparams = self._engine.dialect.create_connect_args(self._engine.url)
        return await psycopg.AsyncConnection.connect(*cargs, **{**cparams, "autocommit": True})


def _open_sqlite(path: str) -> sqlite3.Connection:
    # Autocommit: every SELECT is a transaction of its own and sees the latest commit.
    connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    connection.execute("PRAGMA busy_timeout = 30000")
    connection.execute("PRAGMA query_only = ON")
    return connection
