"""Crypto errors.

Hierarchy::

    CryptoError
     └── IntegrityError   every verify / decrypt / unwrap failure: tampered, truncated,
                          wrong key, wrong context. Says what failed, never why in a way
                          that leaks key material or plaintext.
"""

from __future__ import annotations

__all__ = ["CryptoError", "IntegrityError"]


class CryptoError(Exception):
    """Base of teeflow's crypto errors."""


class IntegrityError(CryptoError):
    """Authentication failed: the data, the key or the context is not what was sealed or signed."""
