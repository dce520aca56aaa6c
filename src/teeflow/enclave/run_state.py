"""Task state the control plane cannot override: expiry, run authorisation, withdrawn approvals.

The control plane keeps a task's status, but status is only a row the operator can edit. What the
enclave believes instead, all signed by members and checked here against the keys the contract
names (docs/run-authorisation.md):

* ``contract["expires_at"]``: every participant signed it; the enclave refuses the task after it.
* a **run authorisation** the creator signs when it runs the task::

      {"body": {"contract_hash": "…", "run_nonce": "<32 hex>", "issued_at": "<ISO 8601, UTC>",
                "start_within_s": 600},
       "signature": "<b64 Ed25519 over the canonical body, domain RUN_DOMAIN>"}

  Without one the task never runs, so a task cancelled before it ran stays cancelled whatever its
  row says. An enclave *starts* the task only within ``start_within_s`` of ``issued_at``; after
  that it only *resumes* it from a checkpoint it sealed under the same authorisation (so a crashed
  executor's task carries on, and a cancel followed by a re-queue older than the window does not).
* a **withdrawal** a participant signs to take its approval back before the run::

      {"body": {"contract_hash": "…", "username": "bob", "withdrawn_at": "<ISO 8601>"},
       "signature": "<b64 Ed25519, domain WITHDRAWAL_DOMAIN>"}

  The enclave refuses a task it is shown a withdrawal for. The operator can withhold it; the
  member's client then detects the run from its receipt (client side, not here).

Time comes from the enclave's own clock, which is only as good as the TEE's notion of time (the
host can slow or set back the clock of an SGX enclave or a confidential VM); docs say so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from teeflow.crypto import CryptoError, SigningKey, VerifyKey, b64d, b64e, canonical_json
from teeflow.crypto import sha256_hex as _sha256_hex

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_START_WITHIN_S",
    "MAX_START_WITHIN_S",
    "RUN_DOMAIN",
    "WITHDRAWAL_DOMAIN",
    "RunGrant",
    "RunStateError",
    "check_run_state",
    "parse_time",
    "run_authorisation_id",
    "sign_run_authorisation",
    "sign_withdrawal",
    "stale_message",
    "verify_run_authorisation",
    "verify_withdrawal",
]

RUN_DOMAIN = "run-authorisation"
WITHDRAWAL_DOMAIN = "approval-withdrawal"
DEFAULT_START_WITHIN_S = 600
"""How long after the creator runs a task an enclave may first start it (10 minutes)."""
MAX_START_WITHIN_S = 24 * 3600
"""The longest start window the enclave accepts, whatever the creator signed."""
CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future an issued-at time may lie (member and enclave clocks differ)."""
_NONCE = re.compile(r"^[0-9a-f]{32}$")


class RunStateError(ValueError):
    """The task may not run (message is public: it names the failed check, nothing secret)."""


@dataclass(frozen=True)
class RunGrant:
    """What :func:`check_run_state` allows."""

    run_id: str
    """Hex SHA-256 of the run authorisation: sealed into checkpoints made under it."""
    issued_at: datetime
    fresh: bool
    """True while the start window is open; a stale grant may only resume a checkpoint of the
    same ``run_id``."""


def parse_time(value: Any, where: str) -> datetime:
    """An ISO 8601 timestamp with a time zone, as UTC; RunStateError otherwise."""
    if not isinstance(value, str):
        raise RunStateError(f"{where} must be an ISO 8601 time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise RunStateError(f"{where} is not an ISO 8601 time: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise RunStateError(f"{where} must carry a time zone")
    return parsed.astimezone(UTC)


def _signed(body: Mapping[str, Any], domain: str, key: SigningKey) -> dict[str, Any]:
    return {"body": dict(body), "signature": b64e(key.sign(domain, canonical_json(dict(body))))}


def _verify(signed: Any, domain: str, key: VerifyKey, what: str) -> Mapping[str, Any]:
    if not isinstance(signed, Mapping):
        raise RunStateError(f"{what} is malformed: needs body and signature")
    body, signature = signed.get("body"), signed.get("signature")
    if not isinstance(body, Mapping) or not isinstance(signature, str):
        raise RunStateError(f"{what} is malformed: needs body and signature")
    try:
        key.verify(domain, canonical_json(dict(body)), b64d(signature))
    except (CryptoError, ValueError):
        raise RunStateError(f"{what} does not verify (forged, or signed by another key)") from None
    return body


def sign_run_authorisation(
    chash: str,
    key: SigningKey,
    *,
    issued_at: datetime,
    run_nonce: str,
    start_within_s: int = DEFAULT_START_WITHIN_S,
) -> dict[str, Any]:
    """The creator's signed permission to run contract ``chash`` (module docstring shape)."""
    body = {
        "contract_hash": chash,
        "run_nonce": run_nonce,
        "issued_at": issued_at.astimezone(UTC).isoformat(),
        "start_within_s": int(start_within_s),
    }
    return _signed(body, RUN_DOMAIN, key)


def sign_withdrawal(
    chash: str, key: SigningKey, *, username: str, withdrawn_at: datetime
) -> dict[str, Any]:
    """A participant's signed withdrawal of its approval of contract ``chash``."""
    body = {
        "contract_hash": chash,
        "username": username,
        "withdrawn_at": withdrawn_at.astimezone(UTC).isoformat(),
    }
    return _signed(body, WITHDRAWAL_DOMAIN, key)


def verify_withdrawal(
    withdrawal: Any, chash: str, *, username: str, key: VerifyKey
) -> Mapping[str, Any]:
    """The body of ``username``'s withdrawal of ``chash``; RunStateError if it is not one."""
    body = _verify(withdrawal, WITHDRAWAL_DOMAIN, key, f"withdrawal of {username!r}")
    if body.get("contract_hash") != chash or body.get("username") != username:
        raise RunStateError(f"withdrawal of {username!r} is for another contract or member")
    parse_time(body.get("withdrawn_at"), "withdrawn_at")
    return body


def run_authorisation_id(authorisation: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the signed run authorisation's canonical JSON."""
    return _sha256_hex(canonical_json(dict(authorisation)))


def check_run_state(
    contract: Mapping[str, Any],
    chash: str,
    *,
    run_authorisation: Mapping[str, Any] | None,
    withdrawals: Mapping[str, Any],
    now: datetime,
) -> RunGrant:
    """Check expiry, withdrawals and the creator's run authorisation; RunStateError if the task
    may not run now. ``now`` is the enclave's own clock (aware)."""
    expires_at = parse_time(contract.get("expires_at"), "contract expires_at")
    if now > expires_at:
        raise RunStateError(f"contract expired at {expires_at.isoformat()}; propose the task again")
    participants = contract["participants"]
    for name, withdrawal in sorted(withdrawals.items()):
        if name not in participants:
            raise RunStateError(f"withdrawal names {name!r}, who is not a participant")
        key = VerifyKey.from_b64(participants[name]["sign_pk"])
        body = verify_withdrawal(withdrawal, chash, username=name, key=key)
        raise RunStateError(f"participant {name!r} withdrew its approval at {body['withdrawn_at']}")
    if not run_authorisation:
        raise RunStateError(
            "the creator has not authorised this run (no signed run authorisation): "
            "the creator runs it with `teeflow task run`"
        )
    creator = contract["creator"]
    key = VerifyKey.from_b64(participants[creator]["sign_pk"])
    issued_at, window = verify_run_authorisation(run_authorisation, chash, key=key, now=now)
    fresh = now <= issued_at + timedelta(seconds=window)
    return RunGrant(run_authorisation_id(run_authorisation), issued_at, fresh)


def verify_run_authorisation(
    authorisation: Any, chash: str, *, key: VerifyKey, now: datetime
) -> tuple[datetime, int]:
    """``(issued_at, start_within_s)`` of a run authorisation for ``chash`` signed by ``key``;
    RunStateError if it is not one, or is issued more than :data:`CLOCK_SKEW` after ``now``."""
    body = _verify(authorisation, RUN_DOMAIN, key, "run authorisation of the creator")
    if body.get("contract_hash") != chash:
        raise RunStateError("run authorisation is for another contract")
    nonce, window = body.get("run_nonce"), body.get("start_within_s")
    if not isinstance(nonce, str) or not _NONCE.match(nonce):
        raise RunStateError("run authorisation lacks a 32-hex-digit run_nonce")
    if type(window) is not int or not 0 < window <= MAX_START_WITHIN_S:
        raise RunStateError(f"run authorisation start_within_s must be 1..{MAX_START_WITHIN_S}")
    issued_at = parse_time(body.get("issued_at"), "run authorisation issued_at")
    if issued_at > now + CLOCK_SKEW:
        raise RunStateError(f"run authorisation is issued in the future ({issued_at.isoformat()})")
    return issued_at, window


def stale_message(grant: RunGrant) -> str:
    """Why a stale grant without a matching checkpoint is refused."""
    return (
        f"run authorisation issued at {grant.issued_at.isoformat()} is past its start window and "
        "this run has no checkpoint made under it; if the task should run, the creator proposes "
        "it again"
    )
