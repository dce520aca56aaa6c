"""The :class:`Store` facade: one class over the store's parts, built from a URL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from teeflow.server.audit import AuditEntry, AuditRecord
from teeflow.server.db import make_engine, upgrade
from teeflow.server.models import AuditRow
from teeflow.server.store._accounts import AccountsMixin
from teeflow.server.store._base import require_aware, to_audit_record
from teeflow.server.store._catalog import CatalogMixin
from teeflow.server.store._flow import FlowMixin
from teeflow.server.store._lease import LeaseMixin
from teeflow.server.store._row_blobs import RowBlobsMixin
from teeflow.server.store._tasks import TasksMixin

__all__ = ["Store"]


class Store(AccountsMixin, CatalogMixin, TasksMixin, FlowMixin, LeaseMixin, RowBlobsMixin):
    """The control plane's SQL store (SQLite or PostgreSQL; sync SQLAlchemy).

    Every method runs in one short transaction of its own and returns frozen records. Time comes
    from the caller (``now=``, timezone-aware UTC); ids come from the caller. Methods that change
    state take an optional ``audit`` entry that is appended to the hash-chained log in the same
    transaction, so the state and the log change together or not at all.
    """

    @classmethod
    def from_url(cls, url: str, *, echo: bool = False) -> Store:
        """A store over ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

        Opens no connection; call :meth:`migrate` to create or upgrade the schema.
        """
        return cls(make_engine(url, echo=echo))

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` with the packaged Alembic migrations."""
        upgrade(self._engine, revision)

    def close(self) -> None:
        """Close the pooled connections and the token lookups' own."""
        self._credentials.close()
        self._engine.dispose()

    # -- audit log -------------------------------------------------------------------------------

    def append_audit(
        self, *, actor: str, action: str, subject: str, details: dict[str, Any], now: datetime
    ) -> AuditRecord:
        """Append one entry to the hash-chained audit log (serialised; the chain never forks)."""
        now = require_aware(now)
        entry = AuditEntry(actor=actor, action=action, subject=subject, details=dict(details))
        with self._write() as session:
            return self._append_audit(session, entry, now)

    def list_audit(self, after_seq: int = 0, *, limit: int | None = None) -> list[AuditRecord]:
        """Entries with ``seq > after_seq`` in chain order (at most ``limit``)."""
        query = select(AuditRow).where(AuditRow.seq > after_seq).order_by(AuditRow.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as session:
            return [to_audit_record(row) for row in session.scalars(query)]

    def recent_audit(self, actions: set[str], *, limit: int) -> list[AuditRecord]:
        """The newest ``limit`` entries whose action is one of ``actions``, newest first."""
        query = (
            select(AuditRow)
            .where(AuditRow.action.in_(sorted(actions)))
            .order_by(AuditRow.seq.desc())
            .limit(limit)
        )
        with self._read() as session:
            return [to_audit_record(row) for row in session.scalars(query)]

    def audit_head(self) -> AuditRecord | None:
        """The newest audit entry (its hash commits to the whole log), or None when empty."""
        with self._read() as session:
            row = session.scalar(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1))
            return to_audit_record(row) if row else None
