"""Binding an enclave's public keys (and a verifier nonce) into its evidence.

Gramine RA-TLS convention: report_data[0:32] = SHA-256 of the public key bundle (e.g. the
SubjectPublicKeyInfo DER), report_data[32:64] = a verifier nonce, or zeros without one.
"""

from __future__ import annotations

import hashlib
import hmac

from teeflow.attestation._errors import AttestationError
from teeflow.attestation._model import Claims

__all__ = ["check_binding", "report_data_for"]

_NONCE_SIZE = 32


def report_data_for(public_key_bundle: bytes, nonce: bytes | None = None) -> bytes:
    """The 64 bytes of report data that bind ``public_key_bundle`` and ``nonce``."""
    if nonce is not None and len(nonce) != _NONCE_SIZE:
        raise AttestationError(
            f"nonce must be {_NONCE_SIZE} bytes, got {len(nonce)}", code="config"
        )
    return hashlib.sha256(public_key_bundle).digest() + (nonce or bytes(_NONCE_SIZE))


def check_binding(claims: Claims, public_key_bundle: bytes, nonce: bytes | None = None) -> None:
    """Raise AttestationError unless ``claims.report_data`` binds this bundle and nonce."""
    expected = report_data_for(public_key_bundle, nonce)
    if not hmac.compare_digest(claims.report_data[:32], expected[:32]):
        raise AttestationError(
            "evidence is not bound to this public key bundle: the keys were swapped or the "
            "evidence belongs to another enclave",
            code="binding",
        )
    if not hmac.compare_digest(claims.report_data[32:], expected[32:]):
        raise AttestationError(
            "evidence nonce does not match: it may be replayed; request fresh evidence",
            code="binding",
        )
