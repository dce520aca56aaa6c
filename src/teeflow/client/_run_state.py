"""The member's side of run authorisation and withdrawal (enclave/run_state.py checks both).

A creator's client signs the run authorisation only for the contract it fetched and only when no
participant is shown as having withdrawn. A withdrawing member's client keeps its signed
withdrawal, and :func:`withdrawal_breach` says so loudly when the task's enclave-signed receipt
later shows the task ran anyway: the operator can withhold a withdrawal from the enclave, but it
cannot hide the receipt of a run from a member who asks for it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from teeflow.client._errors import ClientError
from teeflow.crypto import SigningKey
from teeflow.enclave.contract import contract_hash
from teeflow.enclave.run_state import sign_run_authorisation, sign_withdrawal

__all__ = ["run_authorisation", "withdrawal", "withdrawal_breach"]


def run_authorisation(
    task_id: str,
    chash: str,
    withdrawn: Iterable[str],
    key: SigningKey,
    *,
    now: datetime,
    start_within_s: int,
) -> dict[str, Any]:
    """The creator's signed run authorisation for the contract of hash ``chash`` (task
    ``task_id``); ClientError if it must not run: ``withdrawn`` (as the task was last shown)
    names a participant who withdrew its approval."""
    withdrawn = list(withdrawn)
    if withdrawn:
        raise ClientError(f"not running task {task_id}: {', '.join(withdrawn)} withdrew approval")
    return sign_run_authorisation(
        chash,
        key,
        issued_at=now,
        run_nonce=secrets.token_hex(16),
        start_within_s=start_within_s,
    )


def withdrawal(
    task: Mapping[str, Any], key: SigningKey, *, username: str, now: datetime
) -> dict[str, Any]:
    """This member's signed withdrawal of its approval of ``task``."""
    return sign_withdrawal(
        contract_hash(task["contract"]), key, username=username, withdrawn_at=now
    )


def withdrawal_breach(
    task: Mapping[str, Any], withdrawn: Mapping[str, Any] | None, receipt: Mapping[str, Any]
) -> str | None:
    """A loud message if ``receipt`` (a verified receipt body of ``task``) shows a run this
    member had withdrawn its approval from; None otherwise."""
    if withdrawn is None or receipt.get("status") != "succeeded":
        return None
    body = withdrawn.get("body", {})
    if body.get("contract_hash") != contract_hash(task["contract"]):
        return None
    authorised = str(receipt.get("run", {}).get("authorised_at", "an unknown time"))
    return (
        f"TASK {task['id']} RAN AFTER YOU WITHDREW YOUR APPROVAL (withdrawn at "
        f"{body.get('withdrawn_at')}, run authorised by the creator at {authorised}): the "
        "control plane withheld your withdrawal from the enclave. Its outputs were delivered "
        "as the contract you signed says; report this to the other parties."
    )
