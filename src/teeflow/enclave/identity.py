"""The enclave's key pair: created inside the enclave, sealed to its measurement.

Every executor of one measurement on one platform unseals the same identity, so a task whose keys
were wrapped to it can be resumed by any of them (SGX MRENCLAVE-policy sealing does the same; in
the simulated TEE the sealing secret is a file in the platform's data directory, which gives no
hardware protection and is labelled simulated everywhere).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from teeflow.crypto import (
    DataKey,
    IntegrityError,
    PrivateKey,
    SigningKey,
    canonical_json,
    read_or_create_secret,
    seal_bytes,
    sha256_hex,
    unseal_bytes,
)

__all__ = ["EnclaveIdentity", "derive_key"]


def derive_key(secret: bytes, *, purpose: str, context: str) -> DataKey:
    """A 256-bit key for ``purpose`` (e.g. "checkpoint") bound to ``context`` (a contract hash)."""
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"teeflow/v1/derive",
        info=purpose.encode() + b"\x00" + context.encode(),
    )
    return DataKey(hkdf.derive(secret))


@dataclass
class EnclaveIdentity:
    """The enclave's signing (Ed25519) and receiving (X25519) keys plus a sealing secret."""

    signing_key: SigningKey
    receiving_key: PrivateKey
    secret: bytes
    """Root of keys the enclave derives for itself (checkpoints); never leaves the enclave."""

    @classmethod
    def generate(cls) -> EnclaveIdentity:
        return cls(SigningKey.generate(), PrivateKey.generate(), os.urandom(32))

    def public_keys(self) -> dict[str, str]:
        return {
            "ed25519": self.signing_key.verify_key.b64(),
            "x25519": self.receiving_key.public_key.b64(),
        }

    def public_key_bundle(self) -> bytes:
        """The bytes whose SHA-256 goes into report_data[0:32] of the enclave's evidence."""
        return canonical_json(self.public_keys())

    def fingerprint(self) -> str:
        return sha256_hex(self.public_key_bundle())

    def to_bytes(self) -> bytes:
        """The 96 secret bytes (Ed25519 seed, X25519 key, derivation secret); seal or wrap them."""
        return self.signing_key.to_bytes() + self.receiving_key.to_bytes() + self.secret

    @classmethod
    def from_bytes(cls, raw: bytes) -> EnclaveIdentity:
        if len(raw) != 96:
            raise IntegrityError("sealed enclave identity has the wrong size")
        return cls(SigningKey.from_bytes(raw[:32]), PrivateKey.from_bytes(raw[32:64]), raw[64:96])

    @classmethod
    def load_or_create(
        cls, directory: Path, *, measurement: str, platform_secret: bytes
    ) -> EnclaveIdentity:
        """Unseal the identity for ``measurement`` from ``directory``, creating it on first use.

        Sealing key = HKDF(platform_secret, measurement): code with another measurement cannot
        unseal it.
        """
        sealing_key = derive_key(platform_secret, purpose="seal-identity", context=measurement)
        path = directory / f"identity-{measurement[:16]}.sealed"
        # First writer wins; a racing executor loads the winner's identity.
        sealed = read_or_create_secret(
            path, lambda: seal_bytes(cls.generate().to_bytes(), sealing_key)
        )
        return cls.from_bytes(unseal_bytes(sealed, sealing_key))
