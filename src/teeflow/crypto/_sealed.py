"""The sealed-file format: chunked streaming AES-256-GCM (layout in docs/sealed-format.md).

::

    header  = magic, version, algorithm, chunk_size, key_id, prefix [, digest]  (crypto/_header.py)
    chunk_i = AES-256-GCM(key, nonce_i, plaintext_i, aad=header)      (len(plaintext_i) + 16 bytes)
    nonce_i = prefix (7B) | i u32be | final u8 (1 on the last chunk, else 0)

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes; the last holds 0 to
``chunk_size``. Because the counter and the final flag are in the nonce and the header is the
associated data of every chunk, a flipped, dropped, reordered, duplicated or truncated chunk, a
moved final flag, appended bytes or an edited header all fail authentication. Unseal's buffers
stay bounded by three chunks whatever the file size, and in-memory sources are read in place
(docs/decisions/0017-sealed-files-at-aes-speed.md); :func:`seal_stream` (crypto/_seal.py) seals
on two lanes in bounded memory.

The content digest that a contract binds is SHA-256 of the whole file for version 1 and BLAKE3 for
version 2 (crypto/_digest.py); the header of version 2 names it. Both versions are read; new
files are written as version 2 unless ``digest="sha256"`` asks for version 1.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from teeflow.crypto._digest import BLAKE3, DigestAlgorithm
from teeflow.crypto._errors import CryptoError, IntegrityError
from teeflow.crypto._header import (
    CHUNK_SIZE,
    HEADER_SIZE,
    HEADER_SIZE_V1,
    KEY_ID_SIZE,
    MAGIC,
    MAX_CHUNK_SIZE,
    MAX_CHUNKS,
    MAX_HEADER_SIZE,
    PREFIX_SIZE,
    TAG_SIZE,
    SealedDigest,
    SealedHeader,
)

__all__ = [
    "CHUNK_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "DataKey",
    "SealInfo",
    "SealedDigest",
    "SealedHeader",
    "seal_bytes",
    "unseal_bytes",
    "unseal_stream",
]


@dataclass(frozen=True)
class DataKey:
    """A 256-bit data key. ``repr`` never shows the key."""

    raw: bytes

    def __post_init__(self) -> None:
        if len(self.raw) != 32:
            raise CryptoError("a data key must be 32 bytes")

    @classmethod
    def generate(cls) -> DataKey:
        return cls(AESGCM.generate_key(bit_length=256))

    @property
    def key_id(self) -> bytes:
        """16 bytes that name the key without revealing it."""
        return hashlib.sha256(b"teeflow/v1/key-id\x00" + self.raw).digest()[:KEY_ID_SIZE]

    def __repr__(self) -> str:
        return f"DataKey(id={self.key_id.hex()})"


@dataclass(frozen=True)
class SealInfo:
    """What sealing produced: the file's content digest (crypto/_digest.py) and sizes."""

    ciphertext_digest: str
    """``"blake3:<hex>"`` for version 2, the bare SHA-256 hex for version 1."""
    ciphertext_size: int
    plaintext_size: int


def _nonce(prefix: bytes, counter: int, final: bool) -> bytes:
    if counter >= MAX_CHUNKS:
        raise CryptoError("file too large for one sealed stream")
    return prefix + struct.pack(">IB", counter, 1 if final else 0)


def _fill(src: BinaryIO, view: memoryview) -> int:
    """Read from ``src`` until ``view`` is full or the stream ends; returns the bytes read."""
    readinto = getattr(src, "readinto", None)
    filled = 0
    while filled < len(view):
        if readinto is not None:
            got = readinto(view[filled:])
        else:
            part = src.read(len(view) - filled)
            got = None if part is None else len(part)
            if got:
                view[filled : filled + got] = part
        if got is None:
            raise CryptoError("non-blocking streams are not supported")
        if got == 0:
            break
        filled += got
    return filled


def _new_header(
    key: DataKey, chunk_size: int, digest: DigestAlgorithm, nonce_prefix: bytes | None
) -> tuple[bytes, bytes]:
    """(header bytes, nonce prefix) of a new file; CryptoError for a bad size or prefix."""
    if not 0 < chunk_size <= MAX_CHUNK_SIZE:
        raise CryptoError(f"chunk size must be between 1 and {MAX_CHUNK_SIZE}")
    prefix = os.urandom(PREFIX_SIZE) if nonce_prefix is None else bytes(nonce_prefix)
    if len(prefix) != PREFIX_SIZE:
        raise CryptoError(f"nonce prefix must be {PREFIX_SIZE} bytes")
    return SealedHeader.for_digest(digest, chunk_size, key.key_id, prefix).to_bytes(), prefix


class _Records:
    """Fixed-size records of a stream (sealed chunks), as views.

    An in-memory source (``io.BytesIO``) is read in place through ``getvalue()``, which CPython
    hands out without a copy; any other stream is read into two reused buffers.
    """

    def __init__(self, src: BinaryIO, size: int, start: int) -> None:
        self._src = src
        self._whole: memoryview | None = None
        self._at = start
        if isinstance(src, io.BytesIO):
            self._whole = memoryview(src.getvalue())
        else:
            self._buffers = [memoryview(bytearray(size)) for _ in range(2)]
            self._turn = 0

    def read(self, size: int) -> memoryview:
        """The next ``size`` bytes (fewer at the end); valid until the call after the next."""
        if self._whole is not None:
            view = self._whole[self._at : self._at + size]
            self._at += len(view)
            return view
        buffer = self._buffers[self._turn][:size]
        self._turn ^= 1
        return buffer[: _fill(self._src, buffer)]

    def close(self) -> None:
        """Leave an in-memory source positioned after what was read."""
        if self._whole is not None:
            self._src.seek(self._at)


def unseal_stream(src: BinaryIO, dst: BinaryIO, key: DataKey) -> int:
    """Authenticate and decrypt ``src`` into ``dst``; returns the plaintext size.

    Chunks are written only after they authenticate, but truncation is detected at the end:
    on IntegrityError the caller must discard whatever ``dst`` received. ``dst.write`` gets
    views of a reused buffer and must consume them before it returns.
    """
    header_buf = memoryview(bytearray(MAX_HEADER_SIZE))
    got = _fill(src, header_buf[:HEADER_SIZE_V1])
    size = SealedHeader.size_of(header_buf[:got])
    if size > got:
        got += _fill(src, header_buf[got:size])
    header_bytes = bytes(header_buf[:got])
    header = SealedHeader.parse(header_bytes)
    if not hmac.compare_digest(header.key_id, key.key_id):
        raise IntegrityError("sealed with a different key (key id does not match)")
    aead = AESGCM(key.raw)
    block_size = header.chunk_size + TAG_SIZE
    plain = memoryview(bytearray(header.chunk_size))
    records = _Records(src, block_size, src.tell() if isinstance(src, io.BytesIO) else 0)
    try:
        return _unseal_records(records, block_size, aead, header, header_bytes, plain, dst.write)
    finally:
        records.close()


def _unseal_records(
    records: _Records,
    block_size: int,
    aead: AESGCM,
    header: SealedHeader,
    header_bytes: bytes,
    plain: memoryview,
    write: Callable[[memoryview], object] | None,
) -> int:
    """Decrypt every record into ``plain`` and hand it to ``write``; with ``write`` None,
    ``plain`` is the whole output and each chunk is decrypted in place at its offset."""
    total = 0
    counter = 0
    current = records.read(block_size)
    while True:
        following = records.read(block_size) if len(current) == block_size else None
        final = not following
        if len(current) < TAG_SIZE:
            raise IntegrityError(f"sealed data is truncated at chunk {counter}")
        size = len(current) - TAG_SIZE
        out = plain[:size] if write is not None else plain[total : total + size]
        if len(out) != size:
            raise IntegrityError("sealed data is longer than its chunks say")
        try:
            aead.decrypt_into(
                _nonce(header.nonce_prefix, counter, final), current, header_bytes, out
            )
        except InvalidTag:
            # decrypt_into has already written unauthenticated plaintext: wipe it.
            out[:] = bytes(len(out))
            raise IntegrityError(
                f"chunk {counter} failed authentication (tampered, truncated or reordered)"
            ) from None
        if write is not None:
            write(out)
        total += size
        if final:
            return total
        assert following is not None
        current = following
        counter += 1


def seal_bytes(
    data: bytes,
    key: DataKey,
    *,
    chunk_size: int = CHUNK_SIZE,
    digest: DigestAlgorithm = BLAKE3,
    nonce_prefix: bytes | None = None,
) -> bytes:
    """The same bytes :func:`seal_stream` writes for ``data``, made in memory: each chunk is
    encrypted straight into the result, with no stream buffers and no content digest (a caller
    that needs the digest seals with :func:`seal_stream`). Small payloads (progress events,
    checkpoints) so cost their encryption only. ``nonce_prefix`` is for known-answer tests only.
    Raises CryptoError like it."""
    header, prefix = _new_header(key, chunk_size, digest, nonce_prefix)
    source = memoryview(data)
    chunks = max(1, -(-len(source) // chunk_size))
    # Sized up front and encrypted into in place; getvalue() hands the buffer out uncopied.
    result = io.BytesIO()
    result.seek(len(header) + len(source) + chunks * TAG_SIZE - 1)
    result.write(b"\0")
    aead = AESGCM(key.raw)
    with result.getbuffer() as target:
        target[: len(header)] = header
        at = len(header)
        for counter in range(chunks):
            part = source[counter * chunk_size : (counter + 1) * chunk_size]
            out = target[at : at + len(part) + TAG_SIZE]
            aead.encrypt_into(_nonce(prefix, counter, counter == chunks - 1), part, header, out)
            at += len(out)
    return result.getvalue()


def unseal_bytes(blob: bytes, key: DataKey) -> bytes:
    """:func:`unseal_stream` of a sealed file in memory; every chunk is decrypted straight into
    the result (no intermediate buffers). Raises IntegrityError like it."""
    view = memoryview(blob)
    header = SealedHeader.parse(view)
    header_bytes = bytes(view[: header.size])
    if not hmac.compare_digest(header.key_id, key.key_id):
        raise IntegrityError("sealed with a different key (key id does not match)")
    block_size = header.chunk_size + TAG_SIZE
    body = len(view) - header.size
    chunks = max(1, -(-body // block_size))
    size = max(0, body - chunks * TAG_SIZE)
    # The result is a BytesIO sized up front: its buffer is decrypted into in place and handed
    # out by getvalue() without a copy.
    result = io.BytesIO()
    if size:
        result.seek(size - 1)
        result.write(b"\0")
    records = _Records(io.BytesIO(blob), block_size, header.size)
    aead = AESGCM(key.raw)
    with result.getbuffer() as target:
        _unseal_records(records, block_size, aead, header, header_bytes, target, None)
    return result.getvalue()
