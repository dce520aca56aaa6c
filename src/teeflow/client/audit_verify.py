"""Offline verification of an exported audit log: the hash chain and every receipt in it.

An auditor needs nothing but the log (``teeflow audit export``). Two checks, in order:

1. The hash chain (server/audit.py ``verify_chain``): no entry edited, dropped, inserted or moved.
2. Every ``task.succeeded`` / ``task.failed`` entry carries ``details.receipt``: its Ed25519
   signature must verify under an enclave key announced by an ``executor.register`` entry
   *earlier in the same log* (``details.public_keys.ed25519``), and the receipt's ``task_id``
   must be the entry's subject, so a receipt cannot be moved to another task.

The chain alone does not stop an operator from rewriting the whole log consistently; the receipt
check does, for executions, because only an enclave holds the signing key. (Which enclave keys to
trust is a matter of attestation: the report lists the keys that signed, for comparison with the
key the member attested.) Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from teeflow.crypto import CryptoError, IntegrityError, VerifyKey
from teeflow.enclave.receipt import verify_receipt
from teeflow.server.audit import AuditChainError, verify_chain

__all__ = ["RECEIPT_ACTIONS", "AuditProblem", "AuditReport", "verify_audit_log"]

RECEIPT_ACTIONS = frozenset({"task.succeeded", "task.failed"})


@dataclass(frozen=True)
class AuditProblem:
    """The first entry that fails, by ``seq`` (or line number where there is no seq)."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"audit entry {self.seq}: {self.reason}"


@dataclass(frozen=True)
class AuditReport:
    """What :func:`verify_audit_log` found. ``ok`` only when ``problem`` is None."""

    entries: int
    head: str | None
    receipts_verified: int
    enclave_keys: tuple[str, ...] = ()
    problem: AuditProblem | None = None
    tasks: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "head": self.head,
            "receipts_verified": self.receipts_verified,
            "enclave_keys": list(self.enclave_keys),
            "tasks": dict(self.tasks),
            "problem": None
            if self.problem is None
            else {"seq": self.problem.seq, "reason": self.problem.reason},
        }


def verify_audit_log(
    events: Sequence[Mapping[str, Any]], *, head: str | None = None
) -> AuditReport:
    """Check ``events`` (dicts as exported, oldest first); never raises for bad content.

    With ``head``, the log must end at that hash (detects entries cut off the end).
    """
    try:
        verify_chain(events, head=head)
    except AuditChainError as exc:
        return AuditReport(
            entries=len(events),
            head=None,
            receipts_verified=0,
            problem=AuditProblem(exc.seq, exc.reason),
        )
    enclave_keys: dict[str, VerifyKey] = {}
    tasks: dict[str, str] = {}
    verified = 0
    for event in events:
        seq = int(event["seq"])
        details = event.get("details")
        if event["action"] == "executor.register":
            problem = _announce(enclave_keys, seq, details)
        elif event["action"] in RECEIPT_ACTIONS:
            problem = _check_receipt(enclave_keys, seq, event)
            if problem is None:
                verified += 1
                tasks[str(event["subject"])] = str(event["action"]).removeprefix("task.")
        else:
            problem = None
        if problem is not None:
            return AuditReport(
                entries=len(events),
                head=str(events[-1]["hash"]),
                receipts_verified=verified,
                enclave_keys=tuple(enclave_keys),
                problem=problem,
                tasks=tasks,
            )
    return AuditReport(
        entries=len(events),
        head=str(events[-1]["hash"]) if events else None,
        receipts_verified=verified,
        enclave_keys=tuple(enclave_keys),
        tasks=tasks,
    )


def _announce(keys: dict[str, VerifyKey], seq: int, details: Any) -> AuditProblem | None:
    try:
        encoded = details["public_keys"]["ed25519"]
        keys.setdefault(str(encoded), VerifyKey.from_b64(str(encoded)))
    except (KeyError, TypeError, CryptoError, ValueError):
        return AuditProblem(seq, "executor registration has no valid Ed25519 enclave key")
    return None


def _check_receipt(
    keys: Mapping[str, VerifyKey], seq: int, event: Mapping[str, Any]
) -> AuditProblem | None:
    details = event.get("details")
    receipt = details.get("receipt") if isinstance(details, Mapping) else None
    if not isinstance(receipt, Mapping):
        return AuditProblem(seq, f"{event['action']} carries no receipt")
    body: Mapping[str, Any] | None = None
    for key in keys.values():
        try:
            body = verify_receipt(receipt, key)
            break
        except (IntegrityError, CryptoError, TypeError, ValueError):
            continue
    if body is None:
        return AuditProblem(
            seq,
            "receipt signature does not verify under any enclave key registered earlier in the log",
        )
    if body.get("task_id") != event.get("subject"):
        return AuditProblem(
            seq, f"receipt is for task {body.get('task_id')!r}, not {event.get('subject')!r}"
        )
    if f"task.{body.get('status')}" != event["action"]:
        return AuditProblem(
            seq, f"receipt says {body.get('status')!r} but the entry says {event['action']}"
        )
    return None
