"""Which enclaves and contracts a member's client believes (DESIGN.md guarantee 6).

The control plane shows each task's contract, and the contract names the enclave key whose
receipt the client checks. An operator can rewrite both and sign a receipt with a key of its own,
so the client believes a receipt only when

* the contract hash is one this member approved itself (kept in its home at approve time), or
* the member did not approve this task, and the enclave key the contract names is one it
  attested under its own policy (kept in its home when it attests, and when `teeflow audit verify`
  checks an executor registration's evidence).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from teeflow.attestation import Claims, Evidence, Policy, check_binding, verify
from teeflow.client._errors import ClientError
from teeflow.client._home import MemberHome
from teeflow.crypto import canonical_json

__all__ = ["attest_evidence", "check_trusted_contract", "remember_attested"]


def attest_evidence(
    evidence: Mapping[str, Any],
    public_keys: Mapping[str, Any],
    policy: Policy,
    *,
    now: datetime,
    verifier: Callable[..., Claims] = verify,
) -> tuple[Claims, dict[str, str]]:
    """Verify ``evidence`` at ``now`` under ``policy`` and check it binds ``public_keys``.

    ``verifier(evidence, policy, now=...)`` is :func:`teeflow.attestation.verify` unless a test on
    fake TEE hardware injects its own.

    Returns the claims and the keys as strings; raises AttestationError (or KeyError, TypeError,
    ValueError for malformed input) otherwise.
    """
    claims = verifier(Evidence.from_json(evidence), policy, now=now)
    keys = {str(k): str(v) for k, v in public_keys.items()}
    check_binding(claims, canonical_json(keys))
    return claims, keys


def remember_attested(
    home: MemberHome, claims: Claims, public_keys: Mapping[str, str], *, at: datetime
) -> None:
    """Record an enclave key this member attested, for :func:`check_trusted_contract`."""
    home.record_attested_enclave(
        public_keys=public_keys, tee=claims.tee, measurement=claims.measurement, at=at.isoformat()
    )


def check_trusted_contract(
    home: MemberHome, task_id: str, chash: str, contract: Mapping[str, Any]
) -> None:
    """Raise ClientError unless the member approved contract ``chash`` or, never having
    approved task ``task_id``, attested the enclave key the contract names."""
    approved = home.approved_contracts()
    if chash in approved:
        return
    mine = sorted(h for h, record in approved.items() if record.get("task_id") == task_id)
    if mine:
        raise ClientError(
            f"task {task_id}: its contract ({chash[:16]}…) is not the one you approved "
            f"({mine[0][:16]}…): the control plane rewrote it; do not trust its outputs or "
            "receipt"
        )
    keys = dict(contract["executor"]["public_keys"])
    ed25519 = str(keys.get("ed25519", ""))
    record = home.attested_enclaves().get(ed25519)
    if record is None or record.get("public_keys") != keys:
        raise ClientError(
            f"task {task_id}: its receipt is signed by enclave key {ed25519[:16]}…, which you have "
            "not attested under your policy, for a contract you did not approve; run `teeflow "
            "attest enclave` (or `teeflow audit verify`) if that enclave is genuine"
        )
