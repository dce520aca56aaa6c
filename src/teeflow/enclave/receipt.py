"""Execution receipts: the enclave's signed statement of what it ran and what it produced.

A receipt binds the contract hash, the input ciphertext hashes, the output ciphertext hashes, the
measurement and the status. Anyone holding the enclave's Ed25519 public key (it is in the
contract and in the attested key bundle) can check it offline.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teeflow.crypto import IntegrityError, SigningKey, VerifyKey, b64d, b64e, canonical_json

__all__ = ["RECEIPT_DOMAIN", "sign_receipt", "verify_receipt"]

RECEIPT_DOMAIN = "receipt"


def sign_receipt(body: Mapping[str, Any], key: SigningKey) -> dict[str, Any]:
    """Return ``{"body": body, "signature": b64}`` signed over the canonical JSON of body."""
    signature = key.sign(RECEIPT_DOMAIN, canonical_json(dict(body)))
    return {"body": dict(body), "signature": b64e(signature)}


def verify_receipt(receipt: Mapping[str, Any], enclave_key: VerifyKey) -> Mapping[str, Any]:
    """Check a receipt's signature; return its body. IntegrityError on any change."""
    body = receipt.get("body")
    signature = receipt.get("signature")
    if not isinstance(body, Mapping) or not isinstance(signature, str):
        raise IntegrityError("receipt is malformed: needs body and signature")
    enclave_key.verify(RECEIPT_DOMAIN, canonical_json(dict(body)), b64d(signature))
    return body
