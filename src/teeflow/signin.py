"""The sign-in proof's wire format, shared by a member's client and the control plane.

A member's client signs :func:`sign_in_message` with the account's Ed25519 signing key (domain
:data:`SIGN_IN_DOMAIN`) and sends it with the password; the control plane lets such a sign-in
past every backoff of its throttle (server/throttle.py). Pure functions, no I/O.
"""

from __future__ import annotations

__all__ = ["PROOF_MAX_SKEW_SECONDS", "SIGN_IN_DOMAIN", "sign_in_message"]

SIGN_IN_DOMAIN = "sign-in"
PROOF_MAX_SKEW_SECONDS = 300.0
"""A sign-in proof is accepted this long either side of the control plane's clock."""


def sign_in_message(username: str, at: str) -> bytes:
    """What a member's signing key signs to prove the account is theirs: the username and the
    ISO 8601 time of the attempt, NUL-separated (neither holds NUL: the server checks both)."""
    return "\x00".join(("teeflow/v1", "sign-in", username, at)).encode("utf-8")
