"""The one attestation error.

Every failure -- malformed evidence, a bad signature or chain, expired collateral, a policy
that says no -- raises :class:`AttestationError`. Its message says what failed and what to
do next; it never carries key material. ``code`` is a short, stable tag for callers that
map failures to public messages (``evidence``, ``signature``, ``chain``, ``expired``,
``collateral``, ``policy``, ``binding``, ``provider``, ``config``).
"""

from __future__ import annotations

__all__ = ["AttestationError"]


class AttestationError(Exception):
    """Evidence could not be verified, or verified Claims were not accepted."""

    def __init__(self, message: str, *, code: str = "evidence") -> None:
        super().__init__(message)
        self.code = code
