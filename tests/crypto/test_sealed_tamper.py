"""Every way of changing a sealed file is rejected with IntegrityError (guarantee 4).

Most cases use a small chunk size so a file has many chunks; the boundary cases also run at the
real 1 MiB chunk size.
"""

from __future__ import annotations

import os
import struct

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from teeflow.crypto import CHUNK_SIZE, DataKey, IntegrityError, seal_bytes, unseal_bytes
from teeflow.crypto._header import HEADER_SIZE, TAG_SIZE, SealedHeader

SMALL = 64
KEY = DataKey(bytes(range(32)))


def split(sealed: bytes, chunk_size: int) -> tuple[bytes, list[bytes]]:
    """Header and the list of sealed chunks (ciphertext + tag) of a sealed file."""
    block = chunk_size + TAG_SIZE
    body = sealed[HEADER_SIZE:]
    return sealed[:HEADER_SIZE], [body[i : i + block] for i in range(0, len(body), block)]


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def reseal_with_flags(
    plaintext: bytes, sealed: bytes, chunk_size: int, finals: list[bool]
) -> bytes:
    """Re-encrypt with the real key and header so that only the final flags differ."""
    header, _ = split(sealed, chunk_size)
    prefix = SealedHeader.parse(header).nonce_prefix
    aead = AESGCM(KEY.raw)
    parts = [plaintext[i : i + chunk_size] for i in range(0, len(plaintext), chunk_size)]
    blocks = [
        aead.encrypt(prefix + struct.pack(">IB", i, final), part, header)
        for i, (part, final) in enumerate(zip(parts, finals, strict=True))
    ]
    return header + b"".join(blocks)


@pytest.fixture(scope="module")
def plaintext() -> bytes:
    return os.urandom(4 * SMALL + 7)  # chunks 0-3 full, chunk 4 holds 7 bytes


@pytest.fixture(scope="module")
def sealed(plaintext: bytes) -> bytes:
    return seal_bytes(plaintext, KEY, chunk_size=SMALL)


def test_the_untampered_file_opens(plaintext: bytes, sealed: bytes) -> None:
    assert unseal_bytes(sealed, KEY) == plaintext


@pytest.mark.parametrize("offset", range(HEADER_SIZE), ids=lambda o: f"header byte {o}")
def test_flipped_header_bit_is_rejected(sealed: bytes, offset: int) -> None:
    tampered = flip(sealed, offset)

    with pytest.raises(IntegrityError):
        unseal_bytes(tampered, KEY)


@pytest.mark.parametrize("chunk", range(5))
@pytest.mark.parametrize("where", ["body", "tag"])
def test_flipped_bit_in_a_chunk_is_rejected(sealed: bytes, chunk: int, where: str) -> None:
    header, blocks = split(sealed, SMALL)
    offset = 0 if where == "body" else len(blocks[chunk]) - 1
    blocks[chunk] = flip(blocks[chunk], offset, 0x80)
    tampered = header + b"".join(blocks)

    with pytest.raises(IntegrityError, match=f"chunk {chunk}"):
        unseal_bytes(tampered, KEY)


@pytest.mark.parametrize("chunk_size", [SMALL, CHUNK_SIZE], ids=["small", "1MiB"])
@pytest.mark.parametrize("cut", ["at boundary", "inside chunk", "inside tag", "header only"])
def test_truncation_is_rejected(chunk_size: int, cut: str) -> None:
    sealed = seal_bytes(os.urandom(3 * chunk_size + 7), KEY, chunk_size=chunk_size)
    boundary = HEADER_SIZE + 2 * (chunk_size + TAG_SIZE)
    length = {
        "at boundary": boundary,
        "inside chunk": boundary - chunk_size // 2,
        "inside tag": boundary - 3,
        "header only": HEADER_SIZE,
    }[cut]

    with pytest.raises(IntegrityError):
        unseal_bytes(sealed[:length], KEY)


@pytest.mark.parametrize("length", [0, 1, HEADER_SIZE - 1])
def test_truncated_header_is_rejected(sealed: bytes, length: int) -> None:
    with pytest.raises(IntegrityError, match="header"):
        unseal_bytes(sealed[:length], KEY)


@pytest.mark.parametrize("dropped", range(5))
def test_dropped_chunk_is_rejected(sealed: bytes, dropped: int) -> None:
    header, blocks = split(sealed, SMALL)
    del blocks[dropped]

    with pytest.raises(IntegrityError):
        unseal_bytes(header + b"".join(blocks), KEY)


@pytest.mark.parametrize(("a", "b"), [(0, 1), (1, 2), (0, 3), (2, 3)])
def test_swapped_chunks_are_rejected(sealed: bytes, a: int, b: int) -> None:
    header, blocks = split(sealed, SMALL)
    blocks[a], blocks[b] = blocks[b], blocks[a]

    with pytest.raises(IntegrityError):
        unseal_bytes(header + b"".join(blocks), KEY)


def test_duplicated_chunk_is_rejected(sealed: bytes) -> None:
    header, blocks = split(sealed, SMALL)
    blocks.insert(1, blocks[1])

    with pytest.raises(IntegrityError):
        unseal_bytes(header + b"".join(blocks), KEY)


@pytest.mark.parametrize("extra", [1, TAG_SIZE, SMALL + TAG_SIZE, 1000])
def test_appended_bytes_are_rejected(sealed: bytes, extra: int) -> None:
    with pytest.raises(IntegrityError):
        unseal_bytes(sealed + os.urandom(extra), KEY)


def test_appended_sealed_file_is_rejected(sealed: bytes) -> None:
    _, blocks = split(sealed, SMALL)

    with pytest.raises(IntegrityError):
        unseal_bytes(sealed + b"".join(blocks), KEY)


@pytest.mark.parametrize("moved_to", [0, 1, 3])
def test_final_flag_moved_to_an_earlier_chunk_is_rejected(
    plaintext: bytes, sealed: bytes, moved_to: int
) -> None:
    finals = [i == moved_to for i in range(5)]
    tampered = reseal_with_flags(plaintext, sealed, SMALL, finals)
    honest = reseal_with_flags(plaintext, sealed, SMALL, [i == 4 for i in range(5)])

    assert honest == sealed  # the rebuild differs from the real file only by the flags
    with pytest.raises(IntegrityError, match=f"chunk {moved_to}"):
        unseal_bytes(tampered, KEY)


def test_missing_final_flag_is_rejected(plaintext: bytes, sealed: bytes) -> None:
    tampered = reseal_with_flags(plaintext, sealed, SMALL, [False] * 5)

    with pytest.raises(IntegrityError, match="chunk 4"):
        unseal_bytes(tampered, KEY)


def test_wrong_key_is_rejected(sealed: bytes) -> None:
    with pytest.raises(IntegrityError, match="different key"):
        unseal_bytes(sealed, DataKey.generate())


def test_wrong_key_with_forged_key_id_is_rejected(sealed: bytes) -> None:
    other = DataKey.generate()
    forged = sealed[: 8 + 4] + other.key_id + sealed[12 + 16 :]

    with pytest.raises(IntegrityError):
        unseal_bytes(forged, other)


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(min_size=0, max_size=600),
    chunk_size=st.integers(min_value=1, max_value=48),
    flips=st.lists(
        st.tuples(st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
        min_size=1,
        max_size=4,
    ),
)
def test_any_flipped_bytes_are_rejected(
    data: bytes, chunk_size: int, flips: list[tuple[int, int]]
) -> None:
    original = seal_bytes(data, KEY, chunk_size=chunk_size)
    tampered = bytearray(original)
    for position, mask in flips:
        tampered[position % len(tampered)] ^= mask
    assume(bytes(tampered) != original)  # two flips of one byte can cancel out

    with pytest.raises(IntegrityError):
        unseal_bytes(bytes(tampered), KEY)
