"""Known-answer vectors of the sealed format (tests/vectors/sealed_v1.json), so it cannot drift.

The vectors were built by tests/vectors/make_sealed_vectors.py from the documented layout; a
failure here means the format changed. Fix the code, never the vectors.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from teeflow.crypto import DataKey, IntegrityError, seal_stream, unseal_bytes

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "sealed_v1.json").read_text(encoding="utf-8")
)
KEY = DataKey(bytes.fromhex(VECTORS["key"]))
PREFIX = bytes.fromhex(VECTORS["nonce_prefix"])


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["name"] for case in cases]


@pytest.mark.parametrize("case", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_seal_matches_the_vector(case: dict[str, Any]) -> None:
    plaintext = bytes.fromhex(case["plaintext"])
    out = io.BytesIO()

    info = seal_stream(
        io.BytesIO(plaintext), out, KEY, chunk_size=case["chunk_size"], nonce_prefix=PREFIX
    )

    assert out.getvalue().hex() == case["sealed"]
    assert info.ciphertext_sha256 == case["sealed_sha256"]


@pytest.mark.parametrize("case", VECTORS["valid"], ids=_ids(VECTORS["valid"]))
def test_unseal_matches_the_vector(case: dict[str, Any]) -> None:
    sealed = bytes.fromhex(case["sealed"])

    opened = unseal_bytes(sealed, KEY)

    assert opened.hex() == case["plaintext"]
    assert hashlib.sha256(sealed).hexdigest() == case["sealed_sha256"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=_ids(VECTORS["invalid"]))
def test_invalid_vector_is_rejected(case: dict[str, Any]) -> None:
    sealed = bytes.fromhex(case["sealed"])

    with pytest.raises(IntegrityError):
        unseal_bytes(sealed, KEY)
