"""Reading a sealed file as a plaintext stream, one chunk decrypted at a time.

:func:`unseal_stream` pushes a whole sealed file into a writer. A consumer that parses as it
reads (a CSV reader taking a block of rows at a time) needs the other direction: a file object it
pulls plaintext from. :class:`UnsealReader` is that object. It holds one decrypted chunk (1 MiB by
default) at a time, so a table is parsed while it is being decrypted and never exists as a whole
plaintext copy.

A chunk's bytes are handed out only after its GCM tag verified, and the final flag in every nonce
means a truncated file fails on its last chunk: a reader that reached end of file has read
exactly the sealed plaintext. Whatever was read before an IntegrityError must be discarded, as
with :func:`unseal_stream`.
"""

from __future__ import annotations

import hmac
import io
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from teeflow.crypto._errors import IntegrityError
from teeflow.crypto._header import HEADER_SIZE_V1, TAG_SIZE, SealedHeader
from teeflow.crypto._sealed import DataKey, _nonce, _Records

__all__ = ["UnsealReader", "sealed_plaintext_size"]


def sealed_plaintext_size(sealed: bytes | memoryview, key: DataKey) -> int:
    """The plaintext size of a whole sealed file, from its length and header alone (nothing is
    decrypted or authenticated yet). Raises IntegrityError for a malformed header or one that
    names another key than ``key``."""
    header = SealedHeader.parse(sealed)  # version 1 or 2: 35 or 36 bytes
    if not hmac.compare_digest(header.key_id, key.key_id):
        raise IntegrityError("sealed with a different key (key id does not match)")
    body = len(sealed) - header.size
    chunks = max(1, -(-body // (header.chunk_size + TAG_SIZE)))
    return max(0, body - chunks * TAG_SIZE)


class UnsealReader(io.RawIOBase):
    """A read-only binary file of the plaintext of the sealed stream ``src``.

    ``src`` is read in sealed chunks of ``chunk_size + 16`` bytes (an ``io.BytesIO`` in place,
    without a copy). Raises IntegrityError: at construction for a bad header or a different key,
    from ``read``/``readinto`` for a chunk that fails authentication (tampered, reordered,
    truncated, or appended to).
    """

    def __init__(self, src: BinaryIO, key: DataKey) -> None:
        super().__init__()
        start = src.tell() if isinstance(src, io.BytesIO) else 0
        head = src.read(HEADER_SIZE_V1)
        size = SealedHeader.size_of(head)  # version 2 has one byte more
        if size > len(head):
            head += src.read(size - len(head))
        self._header_bytes = bytes(head)
        self._header = SealedHeader.parse(self._header_bytes)
        if not hmac.compare_digest(self._header.key_id, key.key_id):
            raise IntegrityError("sealed with a different key (key id does not match)")
        self._aead = AESGCM(key.raw)
        self._block = self._header.chunk_size + TAG_SIZE
        self._records = _Records(src, self._block, start + self._header.size)
        self._plain = memoryview(bytearray(self._header.chunk_size))
        self._ready = self._plain[:0]
        self._counter = 0
        self._current: memoryview | None = self._records.read(self._block)
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        target = memoryview(buffer).cast("B")
        while not self._ready and not self._done:
            self._next_chunk()
        size = min(len(target), len(self._ready))
        target[:size] = self._ready[:size]
        self._ready = self._ready[size:]
        return size

    def _next_chunk(self) -> None:
        current = self._current
        assert current is not None
        # The next record is read before this one is decrypted: its absence is the final flag.
        following = self._records.read(self._block) if len(current) == self._block else None
        final = not following
        if len(current) < TAG_SIZE:
            raise IntegrityError(f"sealed data is truncated at chunk {self._counter}")
        out = self._plain[: len(current) - TAG_SIZE]
        nonce = _nonce(self._header.nonce_prefix, self._counter, final)
        try:
            self._aead.decrypt_into(nonce, current, self._header_bytes, out)
        except InvalidTag:
            out[:] = bytes(len(out))  # decrypt_into wrote unauthenticated plaintext: wipe it
            self._done = True
            raise IntegrityError(
                f"chunk {self._counter} failed authentication (tampered, truncated or reordered)"
            ) from None
        self._ready = out
        self._current = following
        self._counter += 1
        self._done = final

    def close(self) -> None:
        if not self.closed:
            self._plain[:] = bytes(len(self._plain))  # no plaintext left behind in the buffer
            self._ready = self._plain[:0]
        super().close()
