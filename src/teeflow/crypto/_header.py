"""The header of a sealed file (docs/sealed-format.md), and the content digest a store records.

::

    version 1: magic "TFSEAL" | 1 | algorithm u8 | chunk_size u32be | key_id 16B | prefix 7B
    version 2: the same with version 2, then digest u8 (2 = BLAKE3)

The header is the associated data of every chunk (crypto/_sealed.py), so none of it can change
unnoticed; version 2's last byte names the content digest a contract binds (crypto/_digest.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from teeflow.crypto._digest import BLAKE3, SHA256, ContentHasher, DigestAlgorithm
from teeflow.crypto._errors import CryptoError, IntegrityError

__all__ = [
    "CHUNK_SIZE",
    "HEADER_SIZE",
    "HEADER_SIZE_V1",
    "KEY_ID_SIZE",
    "MAGIC",
    "MAX_CHUNKS",
    "MAX_CHUNK_SIZE",
    "MAX_HEADER_SIZE",
    "PREFIX_SIZE",
    "TAG_SIZE",
    "SealedDigest",
    "SealedHeader",
]

MAGIC = b"TFSEAL"
VERSION_SHA256 = 1
VERSION_DIGEST_BYTE = 2
"""Version 2 adds one header byte that names the content digest (only BLAKE3 so far)."""
ALG_AES_256_GCM = 1
DIGEST_BLAKE3 = 2
_DIGEST_CODES: dict[int, DigestAlgorithm] = {DIGEST_BLAKE3: BLAKE3}
CHUNK_SIZE = 1 << 20
TAG_SIZE = 16
PREFIX_SIZE = 7
KEY_ID_SIZE = 16
_HEADER = struct.Struct(">6sBBI16s7s")
_HEADER_V2 = struct.Struct(">6sBBI16s7sB")
HEADER_SIZE = _HEADER_V2.size
"""Header size of the files written by default (version 2); version 1 has one byte less
(:attr:`SealedHeader.size`)."""
HEADER_SIZE_V1 = _HEADER.size
MAX_HEADER_SIZE = _HEADER_V2.size
MAX_CHUNK_SIZE = 64 << 20
MAX_CHUNKS = 1 << 32


@dataclass(frozen=True)
class SealedHeader:
    version: int
    algorithm: int
    chunk_size: int
    key_id: bytes
    nonce_prefix: bytes
    digest: DigestAlgorithm = SHA256
    """The content digest a contract binds for this file: SHA-256 (v1) or BLAKE3 (v2)."""

    @property
    def size(self) -> int:
        """Header bytes: 35 for version 1, 36 for version 2."""
        return _HEADER.size if self.version == VERSION_SHA256 else _HEADER_V2.size

    def to_bytes(self) -> bytes:
        fields = (MAGIC, self.version, self.algorithm, self.chunk_size, self.key_id)
        if self.version == VERSION_SHA256:
            return _HEADER.pack(*fields, self.nonce_prefix)
        code = next(c for c, name in _DIGEST_CODES.items() if name == self.digest)
        return _HEADER_V2.pack(*fields, self.nonce_prefix, code)

    @classmethod
    def for_digest(
        cls, digest: DigestAlgorithm, chunk_size: int, key_id: bytes, nonce_prefix: bytes
    ) -> SealedHeader:
        """The header a new file gets: version 1 for SHA-256, version 2 for BLAKE3."""
        if digest == SHA256:
            return cls(VERSION_SHA256, ALG_AES_256_GCM, chunk_size, key_id, nonce_prefix)
        if digest != BLAKE3:
            raise CryptoError(f"unknown content digest {digest!r}: use 'blake3' or 'sha256'")
        return cls(VERSION_DIGEST_BYTE, ALG_AES_256_GCM, chunk_size, key_id, nonce_prefix, digest)

    @staticmethod
    def size_of(start: bytes | memoryview) -> int:
        """Header size from the first 7 bytes (magic and version) of a sealed file."""
        if len(start) < len(MAGIC) + 1:
            raise IntegrityError("sealed data is truncated: header incomplete")
        if bytes(start[: len(MAGIC)]) != MAGIC:
            raise IntegrityError("not a teeflow sealed file (bad magic)")
        version = start[len(MAGIC)]
        if version == VERSION_SHA256:
            return _HEADER.size
        if version == VERSION_DIGEST_BYTE:
            return _HEADER_V2.size
        raise IntegrityError(f"unsupported sealed-file version {version}")

    @classmethod
    def parse(cls, data: bytes | memoryview) -> SealedHeader:
        """Parse the header at the start of ``data`` (more bytes may follow)."""
        size = cls.size_of(data)
        if len(data) < size:
            raise IntegrityError("sealed data is truncated: header incomplete")
        digest: DigestAlgorithm = SHA256
        if size == _HEADER.size:
            _, version, algorithm, chunk_size, key_id, prefix = _HEADER.unpack(data[:size])
        else:
            _, version, algorithm, chunk_size, key_id, prefix, code = _HEADER_V2.unpack(data[:size])
            if code not in _DIGEST_CODES:
                raise IntegrityError(f"unsupported sealed-file digest {code}")
            digest = _DIGEST_CODES[code]
        if algorithm != ALG_AES_256_GCM:
            raise IntegrityError(f"unsupported sealed-file algorithm {algorithm}")
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise IntegrityError("sealed-file header has an invalid chunk size")
        return cls(version, algorithm, chunk_size, key_id, prefix, digest)


class SealedDigest:
    """The content digest of a sealed file fed in pieces, as a contract binds it.

    The algorithm is the one the file's header names (SHA-256 for version 1, BLAKE3 for
    version 2); bytes that do not start like a sealed file get SHA-256. This is for a store that
    records what it was sent; a checker that holds an expected digest uses
    :func:`content_digest_like` instead, so the file cannot pick how it is checked.
    """

    def __init__(self) -> None:
        self._head = bytearray()
        self._hasher: ContentHasher | None = None

    def update(self, data: bytes | memoryview) -> None:
        if self._hasher is None:
            self._head += data
            if len(self._head) < len(MAGIC) + 1:
                return
            self._start(bytes(self._head))
            return
        self._hasher.update(data)

    def _start(self, head: bytes) -> None:
        algorithm: DigestAlgorithm = SHA256
        try:
            if SealedHeader.size_of(head) == MAX_HEADER_SIZE and len(head) >= MAX_HEADER_SIZE:
                algorithm = SealedHeader.parse(head).digest
            elif SealedHeader.size_of(head) == MAX_HEADER_SIZE:
                return  # a version 2 header not yet complete: wait for more bytes
        except IntegrityError:
            pass  # not a sealed file (or one this code cannot read): SHA-256 of the bytes
        self._hasher = ContentHasher(algorithm)
        self._hasher.update(head)
        self._head = bytearray()

    def hexdigest(self) -> str:
        if self._hasher is None:
            self._start(bytes(self._head))
        if self._hasher is None:  # a truncated version 2 header: the bytes are not a sealed file
            self._hasher = ContentHasher(SHA256)
            self._hasher.update(bytes(self._head))
            self._head = bytearray()
        return self._hasher.hexdigest()
