"""The hash-chained audit log: entry format, hashing, export and verification.

Every state change of the control plane appends one entry. Entry ``seq`` (1, 2, 3, ... with no
gaps) commits to everything before it::

    hash = sha256_hex(prev_hash_hex || canonical_json({seq, ts, actor, action, subject, details}))

where ``prev_hash_hex`` is the previous entry's ``hash`` (:data:`GENESIS_HASH` for the first),
``canonical_json`` is RFC 8785 and ``ts`` is :func:`format_ts` of the entry's UTC time. An
auditor who holds a copy of the log (``export_jsonl``), or just a recent head hash, detects any
later edit, deletion, insertion or reordering with :func:`verify_chain`. The chain cannot by itself
detect that the newest entries were cut off: pass the head hash you last saw as ``head`` for that.

Pure module: no database, no I/O beyond the iterables handed in. The store writes the entries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from teeflow.crypto import CryptoError, canonical_json, sha256_hex

__all__ = [
    "GENESIS_HASH",
    "AuditChainError",
    "AuditEntry",
    "AuditRecord",
    "entry_hash",
    "event_to_dict",
    "export_jsonl",
    "format_ts",
    "read_jsonl",
    "verify_chain",
]

GENESIS_HASH = "0" * 64
_HASHED_FIELDS = ("seq", "ts", "actor", "action", "subject", "details")


class AuditChainError(Exception):
    """The audit log is not an unbroken chain; ``seq`` names the first entry that fails."""

    def __init__(self, seq: int, reason: str) -> None:
        super().__init__(f"audit entry {seq}: {reason}")
        self.seq = seq
        self.reason = reason


@dataclass(frozen=True)
class AuditEntry:
    """What a store method should log, atomically with the state change it makes."""

    actor: str
    action: str
    subject: str
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AuditRecord:
    """One stored entry of the audit log."""

    seq: int
    ts: datetime
    actor: str
    action: str
    subject: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


def format_ts(ts: datetime) -> str:
    """The one textual form of a timestamp that the chain hashes: UTC, microseconds, ``Z``."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("audit timestamps must be timezone-aware")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """The chain hash of one entry given the previous entry's hash and its hashed fields."""
    body = {name: fields[name] for name in _HASHED_FIELDS}
    return sha256_hex(prev_hash.encode("ascii") + canonical_json(body))


def event_to_dict(record: AuditRecord) -> dict[str, Any]:
    """The JSON form of an entry, as exported and as :func:`verify_chain` reads it."""
    return {
        "seq": record.seq,
        "ts": format_ts(record.ts),
        "actor": record.actor,
        "action": record.action,
        "subject": record.subject,
        "details": record.details,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


def export_jsonl(records: Iterable[AuditRecord]) -> Iterator[str]:
    """One canonical JSON line (ending in a newline) per entry; suits a streaming response."""
    for record in records:
        yield canonical_json(event_to_dict(record)).decode("utf-8") + "\n"


def read_jsonl(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """Parse an export back into dicts for :func:`verify_chain`; blank lines are skipped."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AuditChainError(number, "line is not valid JSON") from exc
        if not isinstance(value, dict):
            raise AuditChainError(number, "line is not a JSON object")
        yield value


def verify_chain(
    events: Iterable[Mapping[str, Any]],
    *,
    prev_hash: str = GENESIS_HASH,
    start_seq: int = 1,
    head: str | None = None,
) -> None:
    """Check that ``events`` (dicts as made by :func:`event_to_dict`) form one unbroken chain.

    By default the chain must start at the genesis entry; to check a slice that starts later, pass
    the hash of the entry before it as ``prev_hash`` and its ``seq`` + 1 as ``start_seq``. With
    ``head`` the last entry's hash must equal it (detects entries cut off the end).

    Raises :class:`AuditChainError` naming the first entry that is out of place, was edited, or
    does not follow its predecessor.
    """
    expected_seq = start_seq
    for event in events:
        seq = event.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise AuditChainError(expected_seq, "entry has no integer seq")
        if seq != expected_seq:
            raise AuditChainError(
                seq, f"out of order: expected seq {expected_seq} (an entry is missing or moved)"
            )
        missing = [name for name in (*_HASHED_FIELDS, "prev_hash", "hash") if name not in event]
        if missing:
            raise AuditChainError(seq, f"entry lacks {', '.join(missing)}")
        if event["prev_hash"] != prev_hash:
            raise AuditChainError(seq, "prev_hash does not match the previous entry's hash")
        try:
            computed = entry_hash(prev_hash, event)
        except (CryptoError, ValueError, TypeError, UnicodeEncodeError) as exc:
            raise AuditChainError(seq, "entry cannot be hashed") from exc
        if computed != event["hash"]:
            raise AuditChainError(seq, "hash does not match the entry's contents (edited)")
        prev_hash = computed
        expected_seq += 1
    if head is not None and prev_hash != head:
        raise AuditChainError(expected_seq - 1, "the chain does not end at the expected head")
