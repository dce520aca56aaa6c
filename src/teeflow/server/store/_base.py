"""Transactions and the audit append shared by every part of the store."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from teeflow.server.audit import GENESIS_HASH, AuditEntry, AuditRecord, entry_hash, format_ts
from teeflow.server.db import write_engine
from teeflow.server.models import AuditRow
from teeflow.server.store._credentials import CredentialReader
from teeflow.server.store._records import Conflict

__all__ = ["StoreBase", "require_aware", "to_audit_record"]

# Any fixed 64-bit key: PostgreSQL transactions that append to the audit log hold it until commit.
_AUDIT_LOCK_KEY = 0x7465_6566_6C6F_7702

# Built once: a statement object caches its compiled form, so an append does not build, hash and
# look up its SQL again (the append runs in nearly every write of the task path).
_AUDIT = AuditRow.__table__
_AUDIT_LOCK = text("SELECT pg_advisory_xact_lock(:key)").bindparams(key=_AUDIT_LOCK_KEY)
_AUDIT_HEAD = select(_AUDIT.c.seq, _AUDIT.c.hash).order_by(_AUDIT.c.seq.desc()).limit(1)
_AUDIT_INSERT = insert(AuditRow)


def require_aware(now: datetime, name: str = "now") -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware UTC datetime")
    return now.astimezone(UTC)


def to_audit_record(row: AuditRow) -> AuditRecord:
    return AuditRecord(
        seq=row.seq,
        ts=row.ts,
        actor=row.actor,
        action=row.action,
        subject=row.subject,
        details=dict(row.details),
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


class StoreBase:
    """Owns the engine; every public method runs in one short transaction of its own."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = write_engine(engine)
        # SQLite has one writer at a time; a writer that finds the lock held sleeps in SQLite's
        # busy handler (1, 2, 5, 10 ... 100 ms steps) and may wake long after it was released.
        # Writers of this process queue on a lock instead and start as soon as it is free; the
        # busy timeout still orders them against other processes. PostgreSQL needs none.
        self._write_turn: contextlib.AbstractContextManager[Any] = (
            contextlib.nullcontext() if self.is_postgresql else threading.RLock()
        )
        self._credentials = CredentialReader(engine)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def credentials(self) -> CredentialReader:
        """The per-request token lookups (store/_credentials.py)."""
        return self._credentials

    @property
    def is_postgresql(self) -> bool:
        return self._engine.dialect.name == "postgresql"

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _core_read(self) -> Iterator[Connection]:
        """A read transaction on a bare connection, for hot paths that need rows, not ORM
        objects (about a third of a Session's CPU per transaction)."""
        with self._engine.connect() as connection:
            try:
                yield connection
            finally:
                connection.rollback()

    @contextmanager
    def _write(self, conflict: str = "the write conflicts with existing data") -> Iterator[Session]:
        """A read-modify-write transaction (SQLite: ``BEGIN IMMEDIATE``).

        A unique or foreign-key violation rolls it back and becomes :class:`Conflict`.
        """
        try:
            with (
                self._write_turn,
                Session(self._writer, expire_on_commit=False) as session,
                session.begin(),
            ):
                yield session
        except IntegrityError as exc:
            raise Conflict(conflict) from exc

    @contextmanager
    def _core_write(
        self, conflict: str = "the write conflicts with existing data"
    ) -> Iterator[Connection]:
        """:meth:`_write` on a bare connection, for hot paths that write rows with Core
        statements (an ORM Session costs more per transaction)."""
        try:
            with self._write_turn, self._writer.begin() as connection:
                yield connection
        except IntegrityError as exc:
            raise Conflict(conflict) from exc

    def _append_audit(
        self, session: Session | Connection, entry: AuditEntry, now: datetime
    ) -> AuditRecord:
        """Append ``entry`` to the chain inside ``session``'s transaction.

        Call it last in a write transaction, after every other row lock is taken: appends are
        serialised by a transaction-scoped advisory lock on PostgreSQL and by ``BEGIN IMMEDIATE`` on
        SQLite, so two appends never read the same head and the chain never forks.
        """
        if isinstance(session, Session):
            session.flush()  # ORM rows added before the entry reach the database first
            connection = session.connection()
        else:
            connection = session
        (record,) = self._append_audits(connection, [entry], now)
        return record

    def _append_audits(
        self, connection: Connection, entries: Sequence[AuditEntry], now: datetime
    ) -> list[AuditRecord]:
        """Append ``entries`` to the chain in order, each its own entry linked to the one
        before, as :meth:`_append_audit` does one: one head read and one multi-row insert for
        them all (a batch of leases or finishes). Returns their records."""
        now = require_aware(now)
        if not entries:
            return []
        if self.is_postgresql:
            connection.execute(_AUDIT_LOCK)
        last = connection.execute(_AUDIT_HEAD).first()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        ts = format_ts(now)
        records: list[AuditRecord] = []
        rows: list[dict[str, Any]] = []
        for entry in entries:
            details: dict[str, Any] = dict(entry.details)
            fields = {
                "seq": seq,
                "ts": ts,
                "actor": entry.actor,
                "action": entry.action,
                "subject": entry.subject,
                "details": details,
            }
            record = AuditRecord(
                seq=seq,
                ts=now,
                actor=entry.actor,
                action=entry.action,
                subject=entry.subject,
                details=details,
                prev_hash=prev_hash,
                hash=entry_hash(prev_hash, fields),
            )
            records.append(record)
            rows.append({**fields, "ts": now, "prev_hash": prev_hash, "hash": record.hash})
            seq, prev_hash = seq + 1, record.hash
        connection.execute(_AUDIT_INSERT, rows)
        return records

    def _maybe_audit(
        self,
        session: Session | Connection,
        entry: AuditEntry | None,
        now: datetime,
        **override: Any,
    ) -> None:
        if entry is not None:
            self._append_audit(session, dataclasses.replace(entry, **override), now)
