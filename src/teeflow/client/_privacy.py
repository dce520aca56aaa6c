"""A member's side of dataset policies and DP budgets: set, review, approve, settle (issue 15).

- :func:`make_policy` signs the owner's policy for one of its datasets and records it locally.
- :func:`review_policies` blocks approval of a contract that breaks any input's policy (the same
  checks the enclave makes, enclave/policies.py), that carries another policy than the one the
  owner set, or that would spend more than the owner's own ledger has left.
- :func:`budget_statements` reserves the spend in the ledger and signs "remaining budget R at
  ledger version v" for the enclave (enclave/budget.py).
- :func:`settle` applies the enclave's signed receipt: refund if the function never ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teeflow.client._errors import ClientError
from teeflow.client._ledger import PrivacyLedger
from teeflow.crypto import SigningKey, canonical_json
from teeflow.enclave.budget import budget_slot, sign_budget_statement
from teeflow.enclave.policies import (
    DatasetPolicy,
    PolicyViolation,
    check_policies,
    declared_spend,
    sign_policy,
)

__all__ = ["budget_statements", "make_policy", "review_policies", "settle"]


def make_policy(
    *,
    owner: str,
    ciphertext_sha256: str,
    functions: list[str] | None = None,
    recipients: list[str] | None = None,
    min_rows: int = 0,
    raw_rows: bool = True,
    dp: tuple[float, float] | None = None,
    key: SigningKey,
) -> dict[str, Any]:
    """The signed policy ``{"policy", "signature"}``; ValueError on a bad field."""
    policy = DatasetPolicy(
        owner=owner,
        ciphertext_sha256=ciphertext_sha256,
        functions=None if functions is None else tuple(functions),
        recipients=None if recipients is None else tuple(recipients),
        min_rows=min_rows,
        raw_rows=raw_rows,
        dp_epsilon=None if dp is None else float(dp[0]),
        dp_delta=None if dp is None else float(dp[1]),
    )
    DatasetPolicy.from_dict(policy.to_dict())  # the same checks the enclave makes
    return sign_policy(policy, key)


def _mine(contract: Mapping[str, Any], me: str) -> dict[str, Mapping[str, Any]]:
    return {
        slot: spec
        for slot, spec in contract["inputs"].items()
        if not spec.get("joint") and spec["owners"] == [me]
    }


def review_policies(contract: Mapping[str, Any], *, me: str, ledger: PrivacyLedger) -> list[str]:
    """Raise ClientError for a contract that must not be approved; return notes for a human."""
    for slot, spec in _mine(contract, me).items():
        mine = ledger.signed_policy(spec["dataset_id"])
        carried = spec.get("policy")
        if (mine is None) != (carried is None) or (
            mine is not None and canonical_json(mine) != canonical_json(dict(carried or {}))
        ):
            raise ClientError(
                f"input {slot!r}: the contract carries another policy than the one you set for "
                f"dataset {spec['dataset_id']} (`teeflow dataset policy`); refuse to approve"
            )
    try:
        policies = check_policies(contract)
    except PolicyViolation as exc:
        raise ClientError(f"the task breaks a dataset policy: {exc}") from None
    spend = declared_spend(contract)
    notes = []
    if spend is not None:
        notes.append(
            f"differentially private training: every input spends epsilon={spend[0]:g}, "
            f"delta={spend[1]:g} of its budget"
        )
    for slot, policy in sorted(policies.items()):
        if policy.min_rows:
            notes.append(
                f"input {slot!r}: aggregates over fewer than {policy.min_rows} rows are withheld"
            )
        if policy.dp_epsilon is None or spend is None:
            continue
        if policy.owner == me:
            epsilon, delta, _ = ledger.remaining(contract["inputs"][slot]["dataset_id"])
            if spend[0] > epsilon + 1e-12 or spend[1] > delta + 1e-18:
                raise ClientError(
                    f"input {slot!r}: rule 'budget': the task spends epsilon={spend[0]:g}, "
                    f"delta={spend[1]:g}; your ledger has epsilon={epsilon:g}, delta={delta:g} "
                    "left. Reject the task, or ask for a smaller epsilon"
                )
    return notes


def budget_statements(
    contract: Mapping[str, Any],
    *,
    chash: str,
    me: str,
    ledger: PrivacyLedger,
    key: SigningKey,
) -> dict[str, str]:
    """Reserve this task's spend of each of ``me``'s budgeted inputs and sign the remaining
    budget for the enclave: ``{"__budget__:<slot>": statement}`` for the approval."""
    spend = declared_spend(contract)
    if spend is None:
        return {}
    statements: dict[str, str] = {}
    for slot, spec in sorted(_mine(contract, me).items()):
        policy = ledger.policy(spec["dataset_id"])
        if policy is None or policy.dp_epsilon is None:
            continue
        epsilon, delta, version = ledger.reserve(
            spec["dataset_id"],
            task_id=contract["task_id"],
            contract_hash=chash,
            slot=slot,
            spend=spend,
        )
        statements[budget_slot(slot)] = sign_budget_statement(
            contract_hash=chash,
            slot=slot,
            ciphertext_sha256=spec["ciphertext_sha256"],
            ledger_version=version,
            remaining=(epsilon, delta),
            spend=spend,
            key=key,
        )
    return statements


def settle(
    contract: Mapping[str, Any], receipt_body: Mapping[str, Any], *, me: str, ledger: PrivacyLedger
) -> dict[str, str]:
    """Apply a verified receipt to the ledger; ``{slot: state}`` for ``me``'s budgeted inputs."""
    privacy = receipt_body.get("privacy")
    if not isinstance(privacy, Mapping):
        return {}
    chash = receipt_body["contract_hash"]
    return {
        slot: ledger.settle(spec["dataset_id"], chash, privacy)
        for slot, spec in sorted(_mine(contract, me).items())
        if ledger.policy(spec["dataset_id"]) is not None
    }
