"""The owner's signed statement of its remaining privacy budget, checked by the enclave.

A dataset whose policy sets a DP budget spends part of it in every task that reads it. The control
plane is not trusted to count: each owner's client keeps its own ledger (client/_ledger.py) and, as
part of its approval, signs (Ed25519, domain ``privacy-budget``)::

    {"version": 1, "contract_hash": "…", "slot": "data", "ciphertext_sha256": "…",
     "ledger_version": 7, "remaining": {"epsilon": 2.0, "delta": 1e-5},
     "spend": {"epsilon": 1.0, "delta": 1e-6}}

``remaining`` is the budget left *before* this task at ledger version ``ledger_version``. The
statement rides with the approval in ``wrapped_keys["__budget__:<slot>"]`` (the same place the
owner's wrapped keys travel; the approval's signature covers the contract, this one covers the
budget). The enclave refuses a contract whose declared spend exceeds the remaining budget, whose
statement is missing, is not the owner's, or is for another contract or dataset.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from teeflow.crypto import CryptoError, SigningKey, VerifyKey, b64d, b64e, canonical_json
from teeflow.enclave.policies import DatasetPolicy, PolicyViolation, declared_spend

__all__ = [
    "BUDGET_DOMAIN",
    "BUDGET_PREFIX",
    "budget_slot",
    "check_budgets",
    "sign_budget_statement",
    "verify_budget_statement",
]

BUDGET_DOMAIN = "privacy-budget"
BUDGET_PREFIX = "__budget__:"
"""Key prefix in an approval's ``wrapped_keys``; never a valid slot name (slots start with an
alphanumeric character), like ``__function__``."""


def budget_slot(slot: str) -> str:
    return BUDGET_PREFIX + slot


def sign_budget_statement(
    *,
    contract_hash: str,
    slot: str,
    ciphertext_sha256: str,
    ledger_version: int,
    remaining: tuple[float, float],
    spend: tuple[float, float],
    key: SigningKey,
) -> str:
    """The base64 text an owner puts under ``wrapped_keys[budget_slot(slot)]``."""
    body = {
        "version": 1,
        "contract_hash": contract_hash,
        "slot": slot,
        "ciphertext_sha256": ciphertext_sha256,
        "ledger_version": ledger_version,
        "remaining": {"epsilon": remaining[0], "delta": remaining[1]},
        "spend": {"epsilon": spend[0], "delta": spend[1]},
    }
    signature = b64e(key.sign(BUDGET_DOMAIN, canonical_json(body)))
    return b64e(canonical_json({"body": body, "signature": signature}))


def verify_budget_statement(text: str, key: VerifyKey) -> dict[str, Any]:
    """The statement's body after its signature verifies; ValueError otherwise."""
    try:
        signed = json.loads(b64d(text))
        body = signed["body"]
        key.verify(BUDGET_DOMAIN, canonical_json(body), b64d(signed["signature"]))
    except (CryptoError, KeyError, TypeError, ValueError):
        raise ValueError("the budget statement does not verify against the owner's key") from None
    if not isinstance(body, dict):
        raise ValueError("the budget statement is malformed")
    return body


def _pair(value: Any) -> tuple[float, float]:
    if not isinstance(value, Mapping):
        raise ValueError("the budget statement is malformed")
    epsilon, delta = value.get("epsilon"), value.get("delta")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (epsilon, delta)):
        raise ValueError("the budget statement is malformed")
    return float(epsilon), float(delta)  # type: ignore[arg-type]


def check_budgets(
    contract: Mapping[str, Any],
    chash: str,
    policies: Mapping[str, DatasetPolicy],
    approvals: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, float]]:
    """Check every DP-budgeted input's signed remaining budget covers the declared spend; return
    ``{slot: {"epsilon", "delta"}}`` the task spends of every input (empty for a task that does
    not train with DP). Raises PolicyViolation (rule ``budget``)."""
    spend = declared_spend(contract)
    if spend is None:
        return {}
    spent = {slot: {"epsilon": spend[0], "delta": spend[1]} for slot in contract["inputs"]}
    for slot, policy in sorted(policies.items()):
        if policy.dp_epsilon is None:
            continue
        spec = contract["inputs"][slot]
        text = (approvals.get(policy.owner) or {}).get("wrapped_keys", {}).get(budget_slot(slot))
        if not isinstance(text, str):
            raise PolicyViolation(
                slot, policy.owner, "budget", "the owner sent no signed remaining budget"
            )
        try:
            key = VerifyKey.from_b64(contract["participants"][policy.owner]["sign_pk"])
            body = verify_budget_statement(text, key)
            remaining = _pair(body.get("remaining"))
        except (CryptoError, KeyError, ValueError) as exc:
            raise PolicyViolation(slot, policy.owner, "budget", str(exc)) from None
        if (
            body.get("contract_hash") != chash
            or body.get("slot") != slot
            or body.get("ciphertext_sha256") != spec["ciphertext_sha256"]
        ):
            raise PolicyViolation(
                slot, policy.owner, "budget", "the budget statement is for another task or dataset"
            )
        epsilon, delta = spend
        if epsilon > remaining[0] + 1e-12 or delta > remaining[1] + 1e-18:
            raise PolicyViolation(
                slot,
                policy.owner,
                "budget",
                f"the task spends epsilon={epsilon:g}, delta={delta:g}; the owner's remaining "
                f"budget at ledger version {body.get('ledger_version')} is "
                f"epsilon={remaining[0]:g}, delta={remaining[1]:g}",
            )
    return spent
