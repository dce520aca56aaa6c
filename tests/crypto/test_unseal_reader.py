"""UnsealReader: a sealed file read as a plaintext stream, one authenticated chunk at a time."""

from __future__ import annotations

import io
import os

import pytest

from teeflow.crypto import (
    DataKey,
    IntegrityError,
    UnsealReader,
    seal_bytes,
    sealed_plaintext_size,
)
from teeflow.crypto._header import HEADER_SIZE, TAG_SIZE

CHUNK = 64


def _read_all(reader: UnsealReader, piece: int) -> bytes:
    parts = []
    while part := reader.read(piece):
        parts.append(part)
    return b"".join(parts)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK, 5 * CHUNK + 7])
@pytest.mark.parametrize("piece", [1, 13, CHUNK, 1000])
def test_reads_back_the_plaintext_in_any_piece_size(size: int, piece: int) -> None:
    key = DataKey.generate()
    plaintext = os.urandom(size)
    sealed = seal_bytes(plaintext, key, chunk_size=CHUNK)

    assert sealed_plaintext_size(sealed, key) == size
    assert _read_all(UnsealReader(io.BytesIO(sealed), key), piece) == plaintext
    # a stream that is not in memory is read through the reader's own two buffers
    assert _read_all(UnsealReader(io.BufferedReader(io.BytesIO(sealed)), key), piece) == plaintext


@pytest.mark.parametrize("size", [0, CHUNK + 1, 5 * CHUNK + 7])
def test_reads_a_version_1_file_too(size: int) -> None:
    key = DataKey.generate()
    plaintext = os.urandom(size)
    sealed = seal_bytes(plaintext, key, chunk_size=CHUNK, digest="sha256")  # 35-byte header

    assert sealed_plaintext_size(sealed, key) == size
    assert _read_all(UnsealReader(io.BytesIO(sealed), key), 13) == plaintext
    assert _read_all(UnsealReader(io.BufferedReader(io.BytesIO(sealed)), key), 13) == plaintext


def _sealed(chunks: int = 4) -> tuple[DataKey, bytes]:
    key = DataKey.generate()
    return key, seal_bytes(os.urandom(chunks * CHUNK), key, chunk_size=CHUNK)


def _block(index: int) -> slice:
    start = HEADER_SIZE + index * (CHUNK + TAG_SIZE)
    return slice(start, start + CHUNK + TAG_SIZE)


def test_a_flipped_bit_fails_at_its_chunk_and_the_earlier_chunks_were_authentic() -> None:
    key, sealed = _sealed()
    tampered = bytearray(sealed)
    tampered[_block(2).start + 5] ^= 1
    reader = UnsealReader(io.BytesIO(bytes(tampered)), key)

    plaintext = _read_all(UnsealReader(io.BytesIO(sealed), key), 1 << 20)
    assert reader.read(CHUNK) + reader.read(CHUNK) == plaintext[: 2 * CHUNK]
    with pytest.raises(IntegrityError, match="chunk 2 failed authentication"):
        reader.read(CHUNK)


@pytest.mark.parametrize(
    "attack",
    ["truncate a whole chunk", "drop a middle chunk", "swap two chunks", "append a chunk"],
)
def test_truncation_reordering_and_appending_fail_before_end_of_file(attack: str) -> None:
    key, sealed = _sealed()
    blocks = [sealed[_block(i)] for i in range(4)]
    head = sealed[:HEADER_SIZE]
    changed = {
        "truncate a whole chunk": head + b"".join(blocks[:3]),
        "drop a middle chunk": head + blocks[0] + blocks[2] + blocks[3],
        "swap two chunks": head + blocks[1] + blocks[0] + blocks[2] + blocks[3],
        "append a chunk": sealed + blocks[3],
    }[attack]

    with pytest.raises(IntegrityError):
        _read_all(UnsealReader(io.BytesIO(changed), key), 1 << 20)


def test_another_key_is_refused_before_any_read() -> None:
    _, sealed = _sealed()
    other = DataKey.generate()

    with pytest.raises(IntegrityError, match="different key"):
        UnsealReader(io.BytesIO(sealed), other)
    with pytest.raises(IntegrityError, match="different key"):
        sealed_plaintext_size(sealed, other)


def test_close_wipes_the_plaintext_buffer() -> None:
    key, sealed = _sealed(1)
    reader = UnsealReader(io.BytesIO(sealed), key)
    reader.read(1)

    reader.close()

    assert not any(reader._plain)
