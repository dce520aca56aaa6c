"""Known-answer vectors of the sealed format, so it cannot drift: tests/vectors/sealed_v1.json
(content digest SHA-256, files sealed before version 2 must stay readable) and sealed_v2.json
(the header names the content digest, BLAKE3).

The vectors were built by tests/vectors/make_sealed_vectors.py from the documented layout; a
failure here means the format changed. Fix the code, never the vectors.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from teeflow.crypto import (
    DataKey,
    IntegrityError,
    SealedDigest,
    content_digest_like,
    seal_bytes,
    seal_stream,
    unseal_bytes,
    unseal_stream,
)

VECTORS: dict[int, dict[str, Any]] = {
    version: json.loads(
        (Path(__file__).parents[1] / "vectors" / f"sealed_v{version}.json").read_text("utf-8")
    )
    for version in (1, 2)
}
DIGEST_FIELD = {1: "sealed_sha256", 2: "content_digest"}
ALGORITHM = {1: "sha256", 2: "blake3"}


def _cases(kind: str) -> list[Any]:
    return [
        pytest.param(version, case, id=f"v{version}: {case['name']}")
        for version, document in VECTORS.items()
        for case in document[kind]
    ]


def _key(version: int) -> DataKey:
    return DataKey(bytes.fromhex(VECTORS[version]["key"]))


@pytest.mark.parametrize(("version", "case"), _cases("valid"))
def test_seal_matches_the_vector(version: int, case: dict[str, Any]) -> None:
    plaintext = bytes.fromhex(case["plaintext"])
    out = io.BytesIO()

    info = seal_stream(
        io.BytesIO(plaintext),
        out,
        _key(version),
        chunk_size=case["chunk_size"],
        nonce_prefix=bytes.fromhex(VECTORS[version]["nonce_prefix"]),
        digest=ALGORITHM[version],  # type: ignore[arg-type]
    )

    assert out.getvalue().hex() == case["sealed"]
    assert info.ciphertext_digest == case[DIGEST_FIELD[version]]


@pytest.mark.parametrize(("version", "case"), _cases("valid"))
def test_seal_bytes_matches_the_vector(version: int, case: dict[str, Any]) -> None:
    # seal_bytes encrypts in memory without seal_stream's buffers; the bytes must not differ.
    sealed = seal_bytes(
        bytes.fromhex(case["plaintext"]),
        _key(version),
        chunk_size=case["chunk_size"],
        nonce_prefix=bytes.fromhex(VECTORS[version]["nonce_prefix"]),
        digest=ALGORITHM[version],  # type: ignore[arg-type]
    )

    assert sealed.hex() == case["sealed"]


@pytest.mark.parametrize(("version", "case"), _cases("valid"))
def test_unseal_matches_the_vector(version: int, case: dict[str, Any]) -> None:
    sealed = bytes.fromhex(case["sealed"])
    streamed = io.BytesIO()

    opened = unseal_bytes(sealed, _key(version))
    unseal_stream(io.BytesIO(sealed), streamed, _key(version))
    recorded = SealedDigest()
    recorded.update(sealed)

    assert opened.hex() == streamed.getvalue().hex() == case["plaintext"]
    expected = case[DIGEST_FIELD[version]]
    assert content_digest_like(sealed, expected) == expected
    assert recorded.hexdigest() == expected


@pytest.mark.parametrize(("version", "case"), _cases("invalid"))
def test_invalid_vector_is_rejected(version: int, case: dict[str, Any]) -> None:
    sealed = bytes.fromhex(case["sealed"])

    with pytest.raises(IntegrityError):
        unseal_bytes(sealed, _key(version))
    with pytest.raises(IntegrityError):
        unseal_stream(io.BytesIO(sealed), io.BytesIO(), _key(version))
