"""Member and enclave key pairs: Ed25519 to sign, X25519 to receive wrapped keys.

Signatures are over a domain-separated message, ``b"teeflow/v1/" + domain + b"\\x00" + message``,
so a signature made for one purpose (approving a contract) can never be replayed as another
(a receipt, a sim quote).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from teeflow.crypto._encoding import b64d, b64e, sha256_hex
from teeflow.crypto._errors import CryptoError, IntegrityError

__all__ = ["PrivateKey", "PublicKey", "SigningKey", "VerifyKey", "fingerprint", "signed_message"]

_RAW = 32


def signed_message(domain: str, message: bytes) -> bytes:
    """The exact bytes an Ed25519 signature covers for ``domain``."""
    if not domain or "\x00" in domain:
        raise CryptoError("signature domain must be a non-empty string without NUL")
    return b"teeflow/v1/" + domain.encode("utf-8") + b"\x00" + message


def _raw(data: bytes, what: str) -> bytes:
    if len(data) != _RAW:
        raise CryptoError(f"{what} must be {_RAW} bytes, got {len(data)}")
    return bytes(data)


@dataclass(frozen=True)
class VerifyKey:
    """An Ed25519 public key."""

    raw: bytes

    def __post_init__(self) -> None:
        _raw(self.raw, "an Ed25519 public key")

    @classmethod
    def from_b64(cls, text: str) -> VerifyKey:
        return cls(b64d(text))

    def b64(self) -> str:
        return b64e(self.raw)

    @cached_property
    def _parsed(self) -> Ed25519PublicKey:
        # parsed once per key object: a long-lived holder (an inference session) verifies
        # thousands of requests with the same key
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def verify(self, domain: str, message: bytes, signature: bytes) -> None:
        """Raise IntegrityError unless ``signature`` signs ``message`` for ``domain``."""
        try:
            self._parsed.verify(signature, signed_message(domain, message))
        except (InvalidSignature, ValueError) as exc:
            raise IntegrityError(f"signature check failed ({domain})") from exc


class SigningKey:
    """An Ed25519 private key."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(_raw(raw, "an Ed25519 private key")))

    def to_bytes(self) -> bytes:
        return self._key.private_bytes_raw()

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self._key.public_key().public_bytes_raw())

    def sign(self, domain: str, message: bytes) -> bytes:
        return self._key.sign(signed_message(domain, message))

    def __repr__(self) -> str:
        return f"SigningKey(public={self.verify_key.b64()})"


@dataclass(frozen=True)
class PublicKey:
    """An X25519 public key, the target of HPKE key wraps."""

    raw: bytes

    def __post_init__(self) -> None:
        _raw(self.raw, "an X25519 public key")

    @classmethod
    def from_b64(cls, text: str) -> PublicKey:
        return cls(b64d(text))

    def b64(self) -> str:
        return b64e(self.raw)

    def to_cryptography(self) -> X25519PublicKey:
        return self._parsed

    @cached_property
    def _parsed(self) -> X25519PublicKey:  # parsed once per key object, as VerifyKey's
        return X25519PublicKey.from_public_bytes(self.raw)


class PrivateKey:
    """An X25519 private key, to unwrap keys sent to its owner."""

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key

    @classmethod
    def generate(cls) -> PrivateKey:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_bytes(cls, raw: bytes) -> PrivateKey:
        return cls(X25519PrivateKey.from_private_bytes(_raw(raw, "an X25519 private key")))

    def to_bytes(self) -> bytes:
        return self._key.private_bytes_raw()

    @property
    def public_key(self) -> PublicKey:
        return PublicKey(self._key.public_key().public_bytes_raw())

    def to_cryptography(self) -> X25519PrivateKey:
        return self._key

    def __repr__(self) -> str:
        return f"PrivateKey(public={self.public_key.b64()})"


def fingerprint(verify_key: VerifyKey, public_key: PublicKey) -> str:
    """A short, human-comparable fingerprint of a member's two public keys."""
    digest = sha256_hex(b"teeflow/v1/fingerprint\x00" + verify_key.raw + public_key.raw)
    return ":".join(digest[i : i + 4] for i in range(0, 20, 4))
