"""What a task spent of its inputs' privacy budgets, as the enclave's receipt states it.

The receipt of a task that declares a DP spend (``arguments.dp``, enclave/policies.py) carries::

    "privacy": {"function_ran": true, "spent": {"<slot>": {"epsilon": 0.98, "delta": 1e-6}}}

``function_ran`` is false only when the enclave refused the task before the function saw a
decrypted row; then nothing was spent, and the owner's ledger refunds (client/_ledger.py). Once
the function ran, the spend stands even if the task fails: what the accountant computed for the
finished run when the trainer reports it, the declared (larger) spend otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teeflow.enclave.policies import declared_spend

__all__ = ["privacy_receipt", "refused_spend", "spend_problem"]


def refused_spend(contract: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """The declared spend of a contract the checks refused (possibly malformed): per input."""
    try:
        spend = declared_spend(contract)
        slots = list(contract.get("inputs") or {})
    except (KeyError, TypeError, ValueError, AttributeError):
        return {}
    if spend is None:
        return {}
    return {slot: {"epsilon": spend[0], "delta": spend[1]} for slot in slots}


def privacy_receipt(
    spend: Mapping[str, Mapping[str, float]],
    *,
    ran: bool,
    reported: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The receipt's ``privacy`` field (``{}`` for a task without a DP spend)."""
    if not spend:
        return {}
    if not ran:
        spent: dict[str, dict[str, float]] = {}
    elif reported is None:
        spent = {slot: dict(value) for slot, value in spend.items()}
    else:
        value = {"epsilon": float(reported["epsilon"]), "delta": float(reported["delta"])}
        spent = {slot: dict(value) for slot in spend}
    return {"privacy": {"function_ran": ran, "spent": spent}}


def spend_problem(
    spend: Mapping[str, Mapping[str, float]], reported: Mapping[str, float] | None
) -> str | None:
    """Why a finished DP task must fail: it did not account its spend, or overspent."""
    if not spend:
        return None
    if reported is None:
        return "the function did not account its differential-privacy spend"
    declared = next(iter(spend.values()))
    if (
        reported["epsilon"] > declared["epsilon"] * (1 + 1e-9)
        or reported["delta"] > declared["delta"] * (1 + 1e-9) + 1e-18
    ):
        return (
            f"the training spent epsilon={reported['epsilon']:g}, more than the declared "
            f"{declared['epsilon']:g}"
        )
    return None
