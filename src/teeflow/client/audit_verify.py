"""Offline verification of an exported audit log: the hash chain and every receipt in it.

An auditor needs the log (``teeflow audit export``) and its own attestation policy. The checks,
in order:

1. The hash chain (server/audit.py ``verify_chain``): no entry edited, dropped, inserted or moved.
2. With ``since`` (the head this member verified last time, kept in its home): the log still
   holds that entry with that hash, so a history rewritten or cut off since then is reported.
3. Every ``executor.register`` entry carries ``details.evidence``: it must verify under the
   member's policy at the entry's time and bind ``details.public_keys``. Only keys so attested
   are believed; a registration that fails is listed in ``unattested`` (anyone holding the
   executor secret can register), not an error by itself. A ``details.key_id`` (measurement,
   epoch) must be signed by that attested key and name the evidence's measurement, else the
   registration is unattested too (enclave/key_id_claim.py).
4. Every ``task.succeeded`` / ``task.failed`` entry carries ``details.receipt``: its Ed25519
   signature must verify under an enclave key attested by an earlier registration, and the
   receipt's ``task_id`` must be the entry's subject, so a receipt cannot be moved to another task.

The chain alone does not stop an operator from rewriting the whole log consistently; the receipt
check does, for executions, because only an attested enclave holds the signing key. Pure: no I/O,
no clock (each registration's evidence is checked at the time of its entry).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from teeflow.attestation import AttestationError, Policy
from teeflow.client._trust import attest_evidence
from teeflow.crypto import CryptoError, IntegrityError, VerifyKey
from teeflow.enclave.key_id_claim import check_key_id_claim
from teeflow.enclave.receipt import verify_receipt
from teeflow.server.audit import AuditChainError, verify_chain

__all__ = ["RECEIPT_ACTIONS", "AttestedKey", "AuditProblem", "AuditReport", "verify_audit_log"]

RECEIPT_ACTIONS = frozenset({"task.succeeded", "task.failed"})


@dataclass(frozen=True)
class AuditProblem:
    """The first entry that fails, by ``seq`` (or line number where there is no seq)."""

    seq: int
    reason: str

    def __str__(self) -> str:
        return f"audit entry {self.seq}: {self.reason}"


@dataclass(frozen=True)
class AttestedKey:
    """An enclave key whose registration evidence the member's policy accepted."""

    public_keys: dict[str, str]
    tee: str
    measurement: str
    seq: int
    key_epoch: int | None = None
    """The epoch of the key id it registered with (signed by the enclave), None before key ids."""


@dataclass(frozen=True)
class AuditReport:
    """What :func:`verify_audit_log` found. ``ok`` only when ``problem`` is None."""

    entries: int
    head: str | None
    receipts_verified: int
    enclave_keys: tuple[str, ...] = ()
    problem: AuditProblem | None = None
    tasks: dict[str, str] = field(default_factory=dict)
    head_seq: int | None = None
    attested: tuple[AttestedKey, ...] = ()
    unattested: tuple[AuditProblem, ...] = ()
    """Registrations whose evidence the policy refused (their keys are not believed)."""

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
            "head_seq": self.head_seq,
            "unattested": [{"seq": p.seq, "reason": p.reason} for p in self.unattested],
            "attested": [
                {"seq": k.seq, "tee": k.tee, "measurement": k.measurement, "key_epoch": k.key_epoch}
                for k in self.attested
            ],
            "problem": None
            if self.problem is None
            else {"seq": self.problem.seq, "reason": self.problem.reason},
        }


def verify_audit_log(
    events: Sequence[Mapping[str, Any]],
    *,
    policy: Policy,
    head: str | None = None,
    since: Mapping[str, Any] | None = None,
) -> AuditReport:
    """Check ``events`` (dicts as exported, oldest first); never raises for bad content.

    ``policy``: the member's attestation policy, for each executor registration's evidence.
    ``head``: the log must end at that hash (detects entries cut off the end).
    ``since``: ``{"seq", "hash"}`` of the head verified last time (detects a rewritten history).
    """
    try:
        verify_chain(events, head=head)
        _check_since(events, since)
    except AuditChainError as exc:
        return AuditReport(
            entries=len(events),
            head=None,
            receipts_verified=0,
            problem=AuditProblem(exc.seq, exc.reason),
        )
    scan = _Scan(policy)
    problem: AuditProblem | None = None
    for event in events:
        problem = scan.entry(event)
        if problem is not None:
            break
    return AuditReport(
        entries=len(events),
        head=str(events[-1]["hash"]) if events else None,
        receipts_verified=scan.verified,
        enclave_keys=tuple(scan.keys),
        problem=problem,
        tasks=scan.tasks,
        head_seq=int(events[-1]["seq"]) if events else None,
        attested=tuple(scan.attested),
        unattested=tuple(scan.unattested),
    )


def _check_since(events: Sequence[Mapping[str, Any]], since: Mapping[str, Any] | None) -> None:
    if not since:
        return
    seq, expected = int(since["seq"]), str(since["hash"])
    if len(events) < seq:
        raise AuditChainError(
            seq,
            f"the log was truncated: it ends at entry {len(events)}, but you verified it up to "
            f"entry {seq} before; the operator removed entries",
        )
    found = str(events[seq - 1].get("hash"))
    if found != expected:
        raise AuditChainError(
            seq,
            f"the history was rewritten: this entry had hash {expected[:16]}… when you last "
            f"verified the log, now {found[:16]}…",
        )


class _Scan:
    """Registrations and receipts, in log order."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.keys: dict[str, VerifyKey] = {}
        self.refused: dict[str, AuditProblem] = {}
        self.attested: list[AttestedKey] = []
        self.unattested: list[AuditProblem] = []
        self.tasks: dict[str, str] = {}
        self.verified = 0

    def entry(self, event: Mapping[str, Any]) -> AuditProblem | None:
        seq = int(event["seq"])
        if event["action"] == "executor.register":
            self._register(seq, event)
        elif event["action"] in RECEIPT_ACTIONS:
            problem = _check_receipt(self.keys, self.refused, seq, event)
            if problem is not None:
                return problem
            self.verified += 1
            self.tasks[str(event["subject"])] = str(event["action"]).removeprefix("task.")
        return None

    def _register(self, seq: int, event: Mapping[str, Any]) -> None:
        details = event.get("details")
        try:
            if not isinstance(details, Mapping) or not isinstance(details.get("evidence"), Mapping):
                raise ValueError("the registration carries no evidence")
            at = datetime.fromisoformat(str(event["ts"]))
            claims, keys = attest_evidence(
                details["evidence"], details["public_keys"], self.policy, now=at
            )
            encoded = keys["ed25519"]
            verify_key = VerifyKey.from_b64(encoded)
            epoch = None
            if details.get("key_id") is not None:  # registrations from before key ids have none
                epoch = check_key_id_claim(
                    details["key_id"], public_keys=keys, measurement=claims.measurement
                ).epoch
        except (AttestationError, CryptoError, LookupError, TypeError, ValueError) as exc:
            refused = AuditProblem(seq, f"executor registration not attested: {exc}")
            self.unattested.append(refused)
            announced = details.get("public_keys") if isinstance(details, Mapping) else None
            if isinstance(announced, Mapping) and isinstance(announced.get("ed25519"), str):
                self.refused.setdefault(announced["ed25519"], refused)
            return
        if encoded not in self.keys:
            self.keys[encoded] = verify_key
            self.attested.append(AttestedKey(keys, claims.tee, claims.measurement, seq, epoch))


def _check_receipt(
    keys: Mapping[str, VerifyKey],
    refused: Mapping[str, AuditProblem],
    seq: int,
    event: Mapping[str, Any],
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
        for encoded, registration in refused.items():
            try:
                verify_receipt(receipt, VerifyKey.from_b64(encoded))
            except (IntegrityError, CryptoError, TypeError, ValueError):
                continue
            return AuditProblem(
                seq,
                f"receipt is signed by enclave key {encoded[:16]}…, which is not attested under "
                f"your policy (entry {registration.seq}: {registration.reason})",
            )
        return AuditProblem(
            seq,
            "receipt signature does not verify under any enclave key attested under your policy "
            "earlier in the log (not attested: forged, or signed by an unknown enclave)",
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
