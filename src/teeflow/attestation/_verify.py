"""The single entry point: evidence -> verifier -> Claims -> Policy, for every TEE."""

from __future__ import annotations

from datetime import datetime

from teeflow.attestation._dcap import verify_dcap
from teeflow.attestation._errors import AttestationError
from teeflow.attestation._model import Claims, Evidence, require_aware
from teeflow.attestation._policy import Policy
from teeflow.attestation._sim import verify_sim
from teeflow.attestation._snp import verify_snp

__all__ = ["verify", "verify_evidence"]


def verify_evidence(
    evidence: Evidence,
    *,
    now: datetime,
    collateral: object | None = None,
    sim_quoting_keys: frozenset[str] = frozenset(),
) -> Claims:
    """Check evidence cryptographically at ``now`` and return its Claims, without a policy.

    Callers that act on the result must use :func:`verify` (or ``Policy.check``); Claims
    from here are only proven authentic, not acceptable.
    """
    require_aware(now)
    if evidence.tee in ("sgx", "tdx"):
        return verify_dcap(evidence.raw, evidence.tee, collateral, now=now)
    if evidence.tee == "sev-snp":
        return verify_snp(evidence.raw, collateral, now=now)
    if evidence.tee == "sim":
        return verify_sim(evidence.raw, now=now, pinned_keys=sim_quoting_keys)
    raise AttestationError(
        f"no verifier for TEE type {evidence.tee}", code="config"
    )  # pragma: no cover


def verify(
    evidence: Evidence, policy: Policy, *, now: datetime, collateral: object | None = None
) -> Claims:
    """Verify ``evidence`` at ``now`` and return its Claims if ``policy`` accepts them.

    ``collateral``: DCAP ``QuoteCollateralV3`` (``load_dcap_collateral``) for sgx/tdx,
    :class:`SnpCollateral` for sev-snp, nothing for sim. Raises AttestationError otherwise.
    """
    if evidence.tee not in policy.allowed_tees:
        raise AttestationError(
            f"policy rejected the evidence: TEE type {evidence.tee} is not in allowed_tees",
            code="policy",
        )
    if evidence.tee == "sim" and not policy.allow_simulated:
        raise AttestationError(
            "policy rejected the evidence: it is SIMULATED (no hardware protection); set "
            "allow_simulated and pin the quoting key only for development",
            code="policy",
        )
    claims = verify_evidence(
        evidence, now=now, collateral=collateral, sim_quoting_keys=policy.sim_quoting_keys
    )
    policy.check(claims, now=now)
    return claims
