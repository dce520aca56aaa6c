"""Canonical JSON (RFC 8785), SHA-256 content hashes and base64 helpers."""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

import rfc8785

from teeflow.crypto._errors import CryptoError

__all__ = ["b64d", "b64e", "canonical_hash", "canonical_json", "sha256_hex"]


def canonical_json(obj: Any) -> bytes:
    """Serialise ``obj`` with the JSON Canonicalization Scheme (RFC 8785)."""
    try:
        return bytes(rfc8785.dumps(obj))
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise CryptoError(f"value cannot be canonicalised as JSON: {exc}") from exc


def canonical_hash(obj: Any) -> str:
    """Hex SHA-256 of the canonical JSON of ``obj``."""
    return sha256_hex(canonical_json(obj))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64e(data: bytes) -> str:
    """Standard base64 (RFC 4648 section 4) as text."""
    return base64.b64encode(data).decode("ascii")


def b64d(text: str) -> bytes:
    """Decode standard base64, rejecting anything that is not strictly valid."""
    if not isinstance(text, str):  # parsed JSON may hold any type where a string belongs
        raise CryptoError("value is not valid base64")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise CryptoError("value is not valid base64") from exc
