"""HPKE (RFC 9180) base mode from ``cryptography``: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
AES-256-GCM. Used to wrap data keys to a recipient (a member or the enclave) and to send small
messages (progress, errors) to the parties a contract names.

``info`` binds every wrap to its context (RFC 9180 section 5.1): teeflow passes the contract hash
and the slot name, so a wrapped key copied into another task or slot does not open.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke

from teeflow.crypto._errors import CryptoError, IntegrityError
from teeflow.crypto._keys import PrivateKey, PublicKey

__all__ = ["hpke_open", "hpke_seal", "key_wrap_info"]

_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def key_wrap_info(purpose: str, contract_hash: str, slot: str) -> bytes:
    """The HPKE ``info`` for a key of ``slot`` in the contract ``contract_hash``.

    Fields are NUL-separated, so none may contain NUL: otherwise ("a\\x00b", "c") and
    ("a", "b\\x00c") would give the same context.
    """
    fields = [purpose, contract_hash, slot]
    if any("\x00" in field for field in fields):
        raise CryptoError("key-wrap context fields must not contain NUL")
    return b"\x00".join([b"teeflow/v1/hpke", *(field.encode("utf-8") for field in fields)])


def hpke_seal(plaintext: bytes, recipient: PublicKey, *, info: bytes) -> bytes:
    """Encrypt ``plaintext`` to ``recipient``; returns ``enc || ciphertext``."""
    return bytes(_SUITE.encrypt(plaintext, recipient.to_cryptography(), info=info))


def hpke_open(sealed: bytes, recipient: PrivateKey, *, info: bytes) -> bytes:
    """Open what :func:`hpke_seal` made; IntegrityError on a wrong key, context or any change."""
    try:
        return bytes(_SUITE.decrypt(sealed, recipient.to_cryptography(), info=info))
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError(
            "wrapped key or message does not open (wrong key, context or data)"
        ) from exc
