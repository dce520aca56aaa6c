"""Sealing a stream: two lanes, each reading, encrypting and hashing its own run of chunks.

Sealing costs AES-256-GCM plus the content digest of every ciphertext byte (crypto/_digest.py,
the hash a contract binds, guarantee 4). Split by stage, with the hash on a second thread, the
hashing core reads every block back from the core that just encrypted it, and the two threads
hand each other every 1 MiB chunk. Split by data instead, as here, the stream is cut into *jobs*
of consecutive chunks that two lanes (the calling thread and one helper) take in turn. A lane
reads its job (after the job before it was read), encrypts it into its own contiguous block,
then (after the job before it was written) hashes the block, still in its core's cache, and
writes it with one ``write``. Reading, hashing and writing go in file order, so the digest is
that of the exact bytes written, as before; the encryption of one job overlaps everything the
other lane does (docs/decisions/0027-seal-by-data-not-by-stage.md). A source of one job seals on
the calling thread alone.

A chunk's nonce says whether it is the last, so a job is read one byte beyond its end: that
byte, carried to the next job, says there is more.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from teeflow.crypto._digest import BLAKE3, ContentHasher, DigestAlgorithm
from teeflow.crypto._header import CHUNK_SIZE, TAG_SIZE
from teeflow.crypto._sealed import DataKey, SealInfo, _fill, _new_header, _nonce

__all__ = ["seal_stream"]

_JOB_BYTES = 4 << 20
"""Plaintext per job. 1, 2 and 4 MiB sealed equally fast on two cores here; larger jobs mean
fewer turns, each of which may cost a sleep and a wake-up on an idle machine (decision 0027)."""
_MAX_JOB_CHUNKS = 64


def _chunks_per_job(chunk_size: int) -> int:
    return max(1, min(_MAX_JOB_CHUNKS, _JOB_BYTES // chunk_size))


class _Source:
    """The plaintext, one job at a time, in file order; each job says whether it is the last.

    An ``io.BytesIO`` is read in place (views of ``getvalue()``, which CPython hands out without
    a copy) and left positioned after what was read; any other stream is read into the buffer
    the lane passes, of ``job_size + 1`` bytes (the byte read ahead)."""

    def __init__(self, src: BinaryIO, job_size: int) -> None:
        self._src = src
        self._job_size = job_size
        self._whole: memoryview | None = None
        self._carry = b""
        if isinstance(src, io.BytesIO):
            self._whole = memoryview(src.getvalue())
            self._at = src.tell()

    def read(self, buffer: Callable[[], memoryview]) -> tuple[memoryview, bool]:
        """(the next job's plaintext, whether it is the last); ``buffer()`` gives the lane's
        buffer when one is needed."""
        if self._whole is not None:
            view = self._whole[self._at : self._at + self._job_size]
            self._at += len(view)
            self._src.seek(self._at)
            return view, self._at >= len(self._whole)
        target = buffer()
        carried = len(self._carry)
        target[:carried] = self._carry
        got = carried + _fill(self._src, target[carried : self._job_size + 1])
        if got > self._job_size:
            self._carry = bytes(target[self._job_size : got])
            return target[: self._job_size], False
        self._carry = b""
        return target[:got], True


class _Lanes:
    """Two lanes sealing jobs ``lane``, ``lane + 2``, ...: each reads, then hashes and writes, in
    its turn. Lane 0 runs on the calling thread and starts ``start_other`` (lane 1's thread)
    once the source turns out longer than one job."""

    def __init__(
        self,
        source: _Source,
        seal_job: Callable[[int, memoryview, bool, memoryview | None], memoryview],
        hasher: ContentHasher,
        dst: BinaryIO,
        job_size: int,
    ) -> None:
        self._source = source
        self._seal_job = seal_job
        self._hasher = hasher
        self._dst = dst
        self._job_size = job_size
        self._turn = threading.Condition()
        self._read = 0  # jobs read so far
        self._written = 0  # jobs hashed and written so far
        self._last: int | None = None  # the final job's index, once it is read
        self._error: BaseException | None = None
        self.start_other: Callable[[], None] = lambda: None
        self.plaintext_size = 0
        self.sealed_size = 0

    def run(self, lane: int) -> None:
        """Seal this lane's jobs until the final one is read; a failure stops both lanes (see
        :meth:`raise_error`)."""
        plain: memoryview | None = None
        block: memoryview | None = None

        def lane_buffer() -> memoryview:
            nonlocal plain
            if plain is None:
                plain = memoryview(bytearray(self._job_size + 1))
            return plain

        job = lane
        try:
            while self._wait_for(self._reads, job):
                data, final = self._source.read(lane_buffer)
                with self._turn:
                    self._read += 1
                    self.plaintext_size += len(data)
                    if final:
                        self._last = job
                    self._turn.notify_all()
                if job == 0 and not final:
                    self.start_other()
                block = self._seal_job(job, data, final, block)
                if not self._wait_for(self._writes, job):
                    return
                self._hasher.update(block)
                self._dst.write(block)
                with self._turn:
                    self._written += 1
                    self.sealed_size += len(block)
                    self._turn.notify_all()
                if final:
                    return
                job += 2
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread by raise_error
            with self._turn:
                self._error = self._error or exc
                self._turn.notify_all()

    def raise_error(self) -> None:
        """Raise the first failure of either lane, if any."""
        if self._error is not None:
            raise self._error

    def _reads(self) -> int:
        return self._read

    def _writes(self) -> int:
        return self._written

    def _wait_for(self, done: Callable[[], int], job: int) -> bool:
        """Wait until ``done()`` jobs (read, or written) are ``job``: this job's turn. False when
        it will not come: the other lane failed, or read the final job before this one."""
        with self._turn:
            self._turn.wait_for(lambda: done() == job or self._stopped(job))
            return not self._stopped(job)

    def _stopped(self, job: int) -> bool:
        return self._error is not None or (self._last is not None and job > self._last)


def seal_stream(
    src: BinaryIO,
    dst: BinaryIO,
    key: DataKey,
    *,
    chunk_size: int = CHUNK_SIZE,
    nonce_prefix: bytes | None = None,
    digest: DigestAlgorithm = BLAKE3,
) -> SealInfo:
    """Seal everything read from ``src`` into ``dst``.

    ``digest`` picks the content digest and so the version: ``"blake3"`` (version 2, the
    default) or ``"sha256"`` (version 1). ``src`` and ``dst`` are used in file order, one call
    at a time, but from two threads; ``dst.write`` receives views of reused buffers and must
    consume the bytes before it returns, as every file object does. Memory stays bounded
    whatever the size: two blocks of one job (4 MiB of plaintext) and, for a source that is not
    an ``io.BytesIO`` (read in place), two read buffers of one job. ``nonce_prefix`` exists for
    known-answer tests only; leave it unset so it is random. Raises CryptoError for a bad chunk
    size, prefix or digest name; what ``src`` or ``dst`` raise passes through.
    """
    header, prefix = _new_header(key, chunk_size, digest, nonce_prefix)
    aead = AESGCM(key.raw)
    per_job = _chunks_per_job(chunk_size)
    hasher = ContentHasher(digest)
    hasher.update(header)
    dst.write(header)

    def seal_job(job: int, data: memoryview, final: bool, block: memoryview | None) -> memoryview:
        """Encrypt job ``job`` into ``block`` (made at the size the job needs if None: a lane's
        first job is its largest); returns the sealed bytes."""
        chunks = max(1, -(-len(data) // chunk_size))
        size = len(data) + chunks * TAG_SIZE
        if block is None:
            block = memoryview(bytearray(size))
        at = 0
        for index in range(chunks):
            part = data[index * chunk_size : (index + 1) * chunk_size]
            out = block[at : at + len(part) + TAG_SIZE]
            nonce = _nonce(prefix, job * per_job + index, final and index == chunks - 1)
            aead.encrypt_into(nonce, part, header, out)
            at += len(out)
        return block[:size]

    job_size = per_job * chunk_size
    lanes = _Lanes(_Source(src, job_size), seal_job, hasher, dst, job_size)
    other = threading.Thread(target=lanes.run, args=(1,), name="teeflow-seal")
    lanes.start_other = other.start
    try:
        lanes.run(0)
    finally:
        if other.ident is not None:
            other.join()
    lanes.raise_error()
    return SealInfo(hasher.hexdigest(), len(header) + lanes.sealed_size, lanes.plaintext_size)
