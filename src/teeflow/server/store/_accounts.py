"""Users, session tokens, the login rate limit and executors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update

from teeflow.server.audit import AuditEntry
from teeflow.server.models import ExecutorRow, LoginFailureRow, TokenRow, UserRow
from teeflow.server.store._base import StoreBase, require_aware
from teeflow.server.store._records import ExecutorRecord, NotFound, UserRecord

__all__ = ["AccountsMixin"]

# Built once: a lease batch may run it (routes/executors.py ``LastSeen``), and building an
# UPDATE and an ORM Session per call cost more CPU than the write itself.
_TOUCH_EXECUTOR = (
    update(ExecutorRow)
    .where(ExecutorRow.executor_id == bindparam("touched_id"))
    .values(last_seen_at=bindparam("seen"))
)


def _user(row: UserRow) -> UserRecord:
    return UserRecord(
        username=row.username,
        password_hash=row.password_hash,
        sign_pk=row.sign_pk,
        enc_pk=row.enc_pk,
        created_at=row.created_at,
    )


def _executor(row: ExecutorRow) -> ExecutorRecord:
    return ExecutorRecord(
        executor_id=row.executor_id,
        tee=row.tee,
        measurement=row.measurement,
        evidence=dict(row.evidence),
        public_keys=dict(row.public_keys),
        token_hash=row.token_hash,
        registered_at=row.registered_at,
        last_seen_at=row.last_seen_at,
        key_id=None if row.key_id is None else dict(row.key_id),
    )


class AccountsMixin(StoreBase):
    # -- users ---------------------------------------------------------------------------------

    def create_user(
        self,
        *,
        username: str,
        password_hash: str,
        sign_pk: str,
        enc_pk: str,
        now: datetime,
        audit: AuditEntry | None = None,
    ) -> UserRecord:
        """Register a user; :class:`Conflict` if the username is taken."""
        now = require_aware(now)
        with self._write(f"username {username!r} is already taken") as session:
            row = UserRow(
                username=username,
                password_hash=password_hash,
                sign_pk=sign_pk,
                enc_pk=enc_pk,
                created_at=now,
            )
            session.add(row)
            session.flush()
            self._maybe_audit(session, audit, now)
            return _user(row)

    def get_user(self, username: str) -> UserRecord | None:
        with self._read() as session:
            row = session.get(UserRow, username)
            return _user(row) if row else None

    # -- tokens (the store keeps only their hashes) ----------------------------------------------

    def add_token(self, *, token_hash: str, username: str, expires_at: datetime) -> None:
        expires_at = require_aware(expires_at, "expires_at")
        with self._write("token already exists or the user is unknown") as session:
            session.add(TokenRow(token_hash=token_hash, username=username, expires_at=expires_at))

    def get_token(self, token_hash: str) -> tuple[str, datetime] | None:
        """``(username, expires_at)``, or None if unknown or revoked. The caller checks expiry."""
        with self._read() as session:
            row = session.get(TokenRow, token_hash)
            if row is None or row.revoked:
                return None
            return row.username, row.expires_at

    def user_for_token(self, token_hash: str) -> tuple[UserRecord, datetime] | None:
        """``(user, token expiry)`` in one query (every request authenticates); None if the
        token is unknown or revoked. The caller checks expiry."""
        return self._credentials.user(token_hash)

    def revoke_token(self, token_hash: str) -> None:
        """Revoke a token; revoking an unknown or already revoked token does nothing."""
        with self._write() as session:
            session.execute(
                update(TokenRow).where(TokenRow.token_hash == token_hash).values(revoked=True)
            )

    # -- login rate limit ------------------------------------------------------------------------

    def record_login_failure(self, *, username: str, now: datetime, source: str = "") -> None:
        now = require_aware(now)
        with self._write() as session:
            session.add(LoginFailureRow(username=username, at=now, source=source[:64]))

    def login_failures(
        self, *, since: datetime, username: str | None = None, source: str | None = None
    ) -> tuple[int, datetime | None]:
        """Failures at or after ``since`` for ``username`` and/or from ``source`` (None: any):
        how many, and when the latest was."""
        since = require_aware(since, "since")
        where = [LoginFailureRow.at >= since]
        if username is not None:
            where.append(LoginFailureRow.username == username)
        if source is not None:
            where.append(LoginFailureRow.source == source[:64])
        with self._read() as session:
            count, latest = session.execute(
                select(func.count(), func.max(LoginFailureRow.at)).where(*where)
            ).one()
            if latest is not None and latest.tzinfo is None:  # SQLite drops the offset
                latest = latest.replace(tzinfo=since.tzinfo)
            return int(count or 0), latest

    def count_login_failures(self, *, username: str, since: datetime) -> int:
        """Failures for ``username`` at or after ``since``."""
        return self.login_failures(since=since, username=username)[0]

    def clear_login_failures(self, username: str, *, source: str | None = None) -> None:
        """Forget ``username``'s failures (only those from ``source``, if given)."""
        where = [LoginFailureRow.username == username]
        if source is not None:
            where.append(LoginFailureRow.source == source[:64])
        with self._write() as session:
            session.execute(delete(LoginFailureRow).where(*where))

    # -- executors -------------------------------------------------------------------------------

    def register_executor(
        self,
        *,
        executor_id: str,
        tee: str,
        measurement: str,
        evidence: dict[str, Any],
        public_keys: dict[str, Any],
        token_hash: str,
        now: datetime,
        audit: AuditEntry | None = None,
        key_id: dict[str, Any] | None = None,
    ) -> ExecutorRecord:
        """Record an executor and its evidence; :class:`Conflict` on a reused id or token."""
        now = require_aware(now)
        with self._write(f"executor {executor_id!r} or its token already exists") as session:
            row = ExecutorRow(
                executor_id=executor_id,
                tee=tee,
                measurement=measurement,
                evidence=dict(evidence),
                public_keys=dict(public_keys),
                key_id=None if key_id is None else dict(key_id),
                token_hash=token_hash,
                registered_at=now,
                last_seen_at=now,
            )
            session.add(row)
            session.flush()
            self._maybe_audit(session, audit, now)
            return _executor(row)

    def get_executor(self, executor_id: str) -> ExecutorRecord | None:
        with self._read() as session:
            row = session.get(ExecutorRow, executor_id)
            return _executor(row) if row else None

    def executor_by_token(self, token_hash: str) -> ExecutorRecord | None:
        """The executor registered with the token (a hash); None if none is."""
        return self._credentials.executor(token_hash)

    def list_executors(self) -> list[ExecutorRecord]:
        with self._read() as session:
            rows = session.scalars(select(ExecutorRow).order_by(ExecutorRow.registered_at))
            return [_executor(row) for row in rows]

    def touch_executor(self, executor_id: str, now: datetime) -> None:
        """Record that the executor was seen at ``now``; :class:`NotFound` if unknown."""
        now = require_aware(now)
        with self._core_write() as connection:
            result = connection.execute(_TOUCH_EXECUTOR, {"touched_id": executor_id, "seen": now})
            if result.rowcount == 0:
                raise NotFound(f"executor {executor_id!r} is not registered")
