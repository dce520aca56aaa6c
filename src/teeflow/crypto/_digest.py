"""Content digests: the hash of a sealed file's bytes that a contract binds (guarantee 4).

A digest is a string that names its algorithm, so that the contract that carries it binds the
algorithm too (docs/decisions/0017-sealed-files-at-aes-speed.md)::

    "blake3:" + 64 lowercase hex digits     BLAKE3-256, sealed files of version 2
    64 lowercase hex digits                 SHA-256, sealed files of version 1 (the original form)

A checker computes the digest of the bytes it holds with the algorithm that the *expected* value
names (:func:`content_digest_like`), never with one the bytes themselves announce, so a file
cannot choose how it is checked. BLAKE3 comes from the ``blake3`` package (bindings to the
reference Rust implementation); it releases the GIL on large updates, so one thread of a seal
hashes while another encrypts (crypto/_seal.py).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final, Literal, Protocol

import blake3

from teeflow.crypto._errors import CryptoError

__all__ = [
    "BLAKE3",
    "SHA256",
    "ContentHasher",
    "DigestAlgorithm",
    "content_digest",
    "content_digest_like",
    "digest_algorithm",
    "is_content_digest",
]

DigestAlgorithm = Literal["sha256", "blake3"]
SHA256: Final = "sha256"
BLAKE3: Final = "blake3"
_BLAKE3_TAG = "blake3:"
_FORM = re.compile(r"^(?:blake3:)?[0-9a-f]{64}$")


class _Hash(Protocol):
    def update(self, data: bytes | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


def is_content_digest(value: object) -> bool:
    """True when ``value`` is a digest string of one of the forms above."""
    return isinstance(value, str) and _FORM.fullmatch(value) is not None


def digest_algorithm(value: str) -> DigestAlgorithm:
    """The algorithm a digest string names. Raises CryptoError for anything else."""
    if not is_content_digest(value):
        raise CryptoError(
            "a content digest is 64 lowercase hex digits (SHA-256) or 'blake3:' and 64 of them"
        )
    return BLAKE3 if value.startswith(_BLAKE3_TAG) else SHA256


class ContentHasher:
    """Incremental content digest; ``hexdigest()`` gives the tagged string."""

    def __init__(self, algorithm: DigestAlgorithm) -> None:
        if algorithm not in (SHA256, BLAKE3):
            raise CryptoError(f"unknown content digest algorithm {algorithm!r}")
        self.algorithm: DigestAlgorithm = algorithm
        self._hash: _Hash = blake3.blake3() if algorithm == BLAKE3 else hashlib.sha256()

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)

    def hexdigest(self) -> str:
        hexdigest = self._hash.hexdigest()
        return _BLAKE3_TAG + hexdigest if self.algorithm == BLAKE3 else hexdigest


def content_digest(data: bytes | memoryview, *, algorithm: DigestAlgorithm) -> str:
    """The tagged digest of ``data`` under ``algorithm``."""
    hasher = ContentHasher(algorithm)
    hasher.update(data)
    return hasher.hexdigest()


def content_digest_like(data: bytes | memoryview, expected: str) -> str:
    """The digest of ``data`` under the algorithm ``expected`` names, to compare with it.

    Raises CryptoError when ``expected`` is not a digest string."""
    return content_digest(data, algorithm=digest_algorithm(expected))
