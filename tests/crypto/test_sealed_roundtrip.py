"""Sealed files round-trip at every size that sits on or next to a chunk boundary."""

from __future__ import annotations

import hashlib
import io
import os

import blake3
import pytest

from teeflow.crypto import (
    CHUNK_SIZE,
    CryptoError,
    DataKey,
    content_digest,
    content_digest_like,
    seal_bytes,
    seal_stream,
    unseal_bytes,
    unseal_stream,
)
from teeflow.crypto._header import HEADER_SIZE, HEADER_SIZE_V1, TAG_SIZE

SIZES = {
    "empty": 0,
    "one byte": 1,
    "chunk - 1": CHUNK_SIZE - 1,
    "chunk": CHUNK_SIZE,
    "chunk + 1": CHUNK_SIZE + 1,
    "3 chunks + 7": 3 * CHUNK_SIZE + 7,
}


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_round_trip_at_chunk_boundaries(size: int) -> None:
    key = DataKey.generate()
    plaintext = os.urandom(size)

    sealed = seal_bytes(plaintext, key)
    opened = unseal_bytes(sealed, key)

    assert opened == plaintext
    chunks = max(1, -(-size // CHUNK_SIZE))
    assert len(sealed) == HEADER_SIZE + size + chunks * TAG_SIZE


def test_seal_info_describes_the_ciphertext() -> None:
    key = DataKey.generate()
    plaintext = os.urandom(CHUNK_SIZE + 5)
    out = io.BytesIO()

    info = seal_stream(io.BytesIO(plaintext), out, key)

    assert info.ciphertext_digest == "blake3:" + blake3.blake3(out.getvalue()).hexdigest()
    assert info.ciphertext_size == len(out.getvalue())
    assert info.plaintext_size == len(plaintext)


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
def test_version_1_files_stay_readable(size: int) -> None:
    key = DataKey.generate()
    plaintext = os.urandom(size)
    out = io.BytesIO()

    info = seal_stream(io.BytesIO(plaintext), out, key, digest="sha256")
    sealed = out.getvalue()

    assert sealed[6] == 1  # version byte
    assert info.ciphertext_digest == hashlib.sha256(sealed).hexdigest()
    assert unseal_bytes(sealed, key) == plaintext
    streamed = io.BytesIO()
    unseal_stream(io.BytesIO(sealed), streamed, key)
    assert streamed.getvalue() == plaintext
    chunks = max(1, -(-size // CHUNK_SIZE))
    assert len(sealed) == HEADER_SIZE_V1 + size + chunks * TAG_SIZE


def test_a_digest_check_uses_the_expected_algorithm_not_the_files() -> None:
    key = DataKey.generate()
    new = seal_bytes(b"approved data", key)
    old = seal_bytes(b"approved data", key, digest="sha256")
    approved = content_digest(new, algorithm="blake3")

    # A version 1 file offered where a BLAKE3 digest was approved is hashed with BLAKE3.
    assert content_digest_like(old, approved) != approved
    assert content_digest_like(new, approved) == approved
    with pytest.raises(CryptoError):
        content_digest_like(new, "md5:" + "0" * 64)


def test_unseal_stream_returns_the_plaintext_size() -> None:
    key = DataKey.generate()
    plaintext = os.urandom(1000)
    sealed = seal_bytes(plaintext, key, chunk_size=64)
    out = io.BytesIO()

    size = unseal_stream(io.BytesIO(sealed), out, key)

    assert size == 1000
    assert out.getvalue() == plaintext


class _Trickle(io.RawIOBase):
    """A source that returns at most 3 bytes per read, like a slow pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(3, len(buffer)))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_short_reads_from_the_source_change_nothing() -> None:
    key = DataKey.generate()
    plaintext = os.urandom(200)
    out = io.BytesIO()

    seal_stream(_Trickle(plaintext), out, key, chunk_size=32, nonce_prefix=b"\x01" * 7)
    reference = io.BytesIO()
    seal_stream(io.BytesIO(plaintext), reference, key, chunk_size=32, nonce_prefix=b"\x01" * 7)
    opened = io.BytesIO()
    unseal_stream(_Trickle(out.getvalue()), opened, key)

    assert out.getvalue() == reference.getvalue()
    assert opened.getvalue() == plaintext


def test_each_seal_uses_a_fresh_nonce_prefix() -> None:
    key = DataKey.generate()

    first = seal_bytes(b"same plaintext", key)
    second = seal_bytes(b"same plaintext", key)

    assert first[HEADER_SIZE - 7 : HEADER_SIZE] != second[HEADER_SIZE - 7 : HEADER_SIZE]
    assert first != second
