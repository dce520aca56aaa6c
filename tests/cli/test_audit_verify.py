"""client/audit_verify.py on a small signed log built here: each kind of tampering is named, and
only enclave keys whose registration evidence the member's policy accepts are believed."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from teeflow.attestation import Policy, SimQuotingKey, report_data_for
from teeflow.client.audit_verify import verify_audit_log
from teeflow.crypto import SigningKey, b64d, b64e, canonical_json
from teeflow.enclave.key_id_claim import sign_key_id
from teeflow.enclave.keyring import KeyId
from teeflow.enclave.receipt import sign_receipt
from teeflow.server.audit import GENESIS_HASH, entry_hash, format_ts

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def chain(entries: list[tuple[str, str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Hash-chain (actor, action, subject, details) tuples the way the store does."""
    events, prev = [], GENESIS_HASH
    for seq, (actor, action, subject, details) in enumerate(entries, start=1):
        event = {
            "seq": seq,
            "ts": format_ts(T0 + timedelta(seconds=seq)),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
        }
        event["prev_hash"] = prev
        event["hash"] = prev = entry_hash(prev, event)
        events.append(event)
    return events


def rechain(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What an operator rewriting the whole log would do: recompute every hash."""
    return chain([(e["actor"], e["action"], e["subject"], e["details"]) for e in events])


def receipt(key: SigningKey, task_id: str, status: str = "succeeded") -> dict[str, Any]:
    body = {"version": 1, "task_id": task_id, "contract_hash": "ab" * 32, "status": status}
    return sign_receipt(body, key)


ENCLAVE = SigningKey.generate()
QUOTING = SimQuotingKey(SigningKey.generate())
MEASUREMENT = "ab" * 32
POLICY = Policy(
    allowed_tees=frozenset({"sim"}),
    allow_simulated=True,
    sim_quoting_keys=frozenset({QUOTING.public_key_hex}),
    allowed_measurements=frozenset({MEASUREMENT}),
    accepted_tcb_statuses=frozenset({"Simulated"}),
)


def registration(
    key: SigningKey, *, quoting: SimQuotingKey = QUOTING, bound: SigningKey | None = None
) -> dict[str, Any]:
    """executor.register details: sim evidence (issued at T0) binding ``bound`` or ``key``."""
    keys = {"ed25519": key.verify_key.b64(), "x25519": "unused"}
    evidence_keys = {"ed25519": (bound or key).verify_key.b64(), "x25519": "unused"}
    evidence = quoting.quote(
        report_data_for(canonical_json(evidence_keys)), measurement=MEASUREMENT, now=T0
    )
    return {"tee": "sim", "public_keys": keys, "evidence": evidence.to_json()}


def good_log() -> list[dict[str, Any]]:
    return chain(
        [
            ("alice", "user.register", "alice", {}),
            ("executor:e1", "executor.register", "e1", registration(ENCLAVE)),
            ("alice", "task.propose", "t1", {"contract_hash": "ab" * 32}),
            (
                "executor:e1",
                "task.succeeded",
                "t1",
                {"receipt": receipt(ENCLAVE, "t1"), "reason": ""},
            ),
            ("alice", "task.propose", "t2", {}),
            ("executor:e1", "task.failed", "t2", {"receipt": receipt(ENCLAVE, "t2", "failed")}),
        ]
    )


def test_a_good_log_verifies() -> None:
    report = verify_audit_log(good_log(), policy=POLICY)

    assert report.ok, report.problem
    assert report.entries == 6 and report.receipts_verified == 2
    assert report.tasks == {"t1": "succeeded", "t2": "failed"}
    assert report.enclave_keys == (ENCLAVE.verify_key.b64(),)


def test_an_empty_log_verifies() -> None:
    assert verify_audit_log([], policy=POLICY).ok


def test_head_detects_entries_cut_off_the_end() -> None:
    events = good_log()

    report = verify_audit_log(events[:-1], head=events[-1]["hash"], policy=POLICY)

    assert not report.ok


@pytest.mark.parametrize(
    ("tamper", "seq"),
    [
        (lambda ev: ev[2]["details"].update(contract_hash="cd" * 32), 3),
        (lambda ev: ev.pop(3), 5),
        (lambda ev: ev.insert(1, ev.pop(2)), 3),
        (lambda ev: ev[4].update(actor="mallory"), 5),
    ],
    ids=["edit-detail", "delete", "swap", "edit-actor"],
)
def test_chain_tampering_names_the_entry(tamper: Any, seq: int) -> None:
    events = good_log()
    tamper(events)

    report = verify_audit_log(events, policy=POLICY)

    assert report.problem is not None and report.problem.seq == seq


def _flip_signature(event: dict[str, Any]) -> None:
    signature = bytearray(b64d(event["details"]["receipt"]["signature"]))
    signature[0] ^= 1
    event["details"]["receipt"]["signature"] = b64e(bytes(signature))


def test_a_rewritten_log_with_a_forged_receipt_fails_at_it() -> None:
    events = good_log()
    _flip_signature(events[3])

    report = verify_audit_log(rechain(events), policy=POLICY)

    assert report.problem is not None and report.problem.seq == 4
    assert "signature" in report.problem.reason


def test_a_receipt_signed_by_an_unannounced_key_fails() -> None:
    events = good_log()
    events[3]["details"]["receipt"] = receipt(SigningKey.generate(), "t1")

    report = verify_audit_log(rechain(events), policy=POLICY)

    assert report.problem is not None and report.problem.seq == 4


def test_a_receipt_before_its_key_was_announced_fails() -> None:
    events = good_log()
    events.insert(0, events.pop(3))  # the receipt now precedes executor.register

    report = verify_audit_log(rechain(events), policy=POLICY)

    assert report.problem is not None and report.problem.seq == 1


def test_a_receipt_moved_to_another_task_fails() -> None:
    events = good_log()
    events[5]["details"]["receipt"] = copy.deepcopy(events[3]["details"]["receipt"])
    events[5]["action"] = "task.succeeded"

    report = verify_audit_log(rechain(events), policy=POLICY)

    assert report.problem is not None and report.problem.seq == 6
    assert "'t1'" in report.problem.reason


def test_a_receipt_whose_status_disagrees_with_the_entry_fails() -> None:
    events = good_log()
    events[3]["action"] = "task.failed"

    report = verify_audit_log(rechain(events), policy=POLICY)

    assert report.problem is not None and report.problem.seq == 4


def test_a_finished_task_without_a_receipt_fails() -> None:
    events = good_log()
    del events[3]["details"]["receipt"]

    report = verify_audit_log(rechain(events), policy=POLICY)

    assert report.problem is not None and report.problem.seq == 4
    assert report.to_dict()["problem"] == {"seq": 4, "reason": report.problem.reason}


@pytest.mark.parametrize(
    "details",
    [
        {"tee": "sim", "public_keys": {"ed25519": SigningKey.generate().verify_key.b64()}},
        registration(SigningKey.generate(), quoting=SimQuotingKey(SigningKey.generate())),
        registration(SigningKey.generate(), bound=ENCLAVE),
    ],
    ids=["no-evidence", "quoting-key-not-pinned", "evidence-binds-another-key"],
)
def test_a_receipt_signed_by_a_key_the_policy_did_not_attest_fails(details: Any) -> None:
    operator = SigningKey.generate()
    details = {**details, "public_keys": {**details["public_keys"]}}
    details["public_keys"]["ed25519"] = operator.verify_key.b64()
    events = good_log()
    events.insert(3, {**events[1], "subject": "e2", "details": details})
    events[4]["details"]["receipt"] = receipt(operator, "t1")

    report = verify_audit_log(rechain(events), policy=POLICY)

    assert report.problem is not None and report.problem.seq == 5
    assert "not attested" in report.problem.reason
    assert [p.seq for p in report.unattested] == [4]


def test_an_unattested_registration_alone_is_reported_not_fatal() -> None:
    events = good_log()
    events.insert(2, {**events[1], "details": registration(SigningKey.generate(), bound=ENCLAVE)})

    report = verify_audit_log(rechain(events), policy=POLICY)

    assert report.ok, report.problem
    assert [p.seq for p in report.unattested] == [3]
    assert [k.public_keys["ed25519"] for k in report.attested] == [ENCLAVE.verify_key.b64()]


def test_the_remembered_head_accepts_a_log_that_only_grew() -> None:
    events = good_log()
    since = {"seq": 4, "hash": events[3]["hash"]}

    report = verify_audit_log(events, policy=POLICY, since=since)

    assert report.ok, report.problem
    assert report.head_seq == 6 and report.head == events[-1]["hash"]


def test_the_remembered_head_reports_a_rewritten_history() -> None:
    events = good_log()
    since = {"seq": 4, "hash": events[3]["hash"]}
    events[2]["details"]["contract_hash"] = "cd" * 32

    report = verify_audit_log(rechain(events), policy=POLICY, since=since)

    assert report.problem is not None and report.problem.seq == 4
    assert "rewritten" in report.problem.reason


def test_the_remembered_head_reports_a_truncated_log() -> None:
    events = good_log()
    since = {"seq": 6, "hash": events[5]["hash"]}

    report = verify_audit_log(events[:4], policy=POLICY, since=since)

    assert report.problem is not None and "truncated" in report.problem.reason


def _with_key_id(details: dict[str, Any], epoch: int, *, signer: SigningKey = ENCLAVE) -> None:
    details["key_id"] = sign_key_id(KeyId(MEASUREMENT, epoch), signer)


def test_a_registration_key_id_signed_by_the_attested_key_is_shown() -> None:
    events = good_log()
    _with_key_id(events[1]["details"], 3)

    report = verify_audit_log(rechain(events), policy=POLICY)

    assert report.ok, report.problem
    assert [k.key_epoch for k in report.attested] == [3]
    assert report.to_dict()["attested"][0]["key_epoch"] == 3


@pytest.mark.parametrize("alter", ["epoch", "signer", "measurement"])
def test_an_altered_registration_key_id_is_not_attested(alter: str) -> None:
    """An operator who rewrites the whole log (chain recomputed) to change an executor's key id
    is caught: the key id is signed by the enclave key the evidence binds."""
    events = good_log()
    details = events[1]["details"]
    _with_key_id(details, 1, signer=SigningKey.generate() if alter == "signer" else ENCLAVE)
    if alter == "epoch":
        details["key_id"]["epoch"] = 2
    if alter == "measurement":
        details["key_id"]["measurement"] = "cd" * 32

    report = verify_audit_log(rechain(events), policy=POLICY)

    assert [p.seq for p in report.unattested] == [2]
    assert "key id" in report.unattested[0].reason
    assert not report.ok  # the receipts signed by that key are no longer believed
