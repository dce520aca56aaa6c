"""Sealing a stream: two lanes, each encrypting a run of chunks and hashing its own ciphertext.

Sealing costs AES-256-GCM plus the content digest of every ciphertext byte (crypto/_digest.py,
the hash a contract binds, guarantee 4). Split by stage, with the hash on a second thread, the
hashing core reads every block back from the core that just encrypted it, and the two threads
hand each other every 1 MiB chunk. Split by data instead, as here, the ciphertext is hashed by the
core whose cache still holds it: the calling thread reads the source in file order, one chunk
ahead (a chunk's nonce says whether it is the last), and hands out *jobs* of consecutive chunks to
two lane threads in turn. A lane encrypts its job into its own contiguous block, then, once the
job before has been hashed and written, hashes its block and writes it with one ``write``. The
encryption of one job overlaps the encryption and hashing of the other; only hashing and writing
go in file order, so the digest is that of the exact bytes written, as before
(docs/decisions/0027-seal-by-data-not-by-stage.md). A source of one job seals inline, with no
thread.
"""

from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from teeflow.crypto._digest import BLAKE3, ContentHasher, DigestAlgorithm
from teeflow.crypto._header import CHUNK_SIZE, TAG_SIZE
from teeflow.crypto._sealed import DataKey, SealInfo, _new_header, _nonce, _Records

__all__ = ["seal_stream"]

_JOB_BYTES = 4 << 20
"""Plaintext per job: large enough that the threads wait for each other a few times per 4 MiB
only (each wait costs a sleep and a wake-up), small enough that a job's block is still in its
core's cache when it is hashed (measured: 1, 2, 4 and 8 MiB; 4 MiB slept least for no more CPU)."""
_MAX_JOB_CHUNKS = 64
_IN_FLIGHT = 3
"""Jobs handed out at once: one per lane and one queued, so a lane that finishes a job takes the
next without waiting for the reading thread to wake up."""


def _chunks_per_job(chunk_size: int) -> int:
    return max(1, min(_MAX_JOB_CHUNKS, _JOB_BYTES // chunk_size))


class _Lanes:
    """Two lane threads that seal jobs; the digest and ``write`` see the jobs in file order.

    Job ``j`` is encrypted into block ``j % 3``, so up to three jobs are in flight."""

    def __init__(
        self, aead: AESGCM, header: bytes, prefix: bytes, hasher: ContentHasher, dst: BinaryIO
    ) -> None:
        self._aead = aead
        self._header = header
        self._prefix = prefix
        self._hasher = hasher
        self._dst = dst
        self._blocks: list[memoryview | None] = [None] * _IN_FLIGHT
        self._pool: ThreadPoolExecutor | None = None
        self._jobs: list[Future[None]] = []

    def ready(self, job: int) -> None:
        """Block until job ``job`` may be prepared: the job that last used its block is done (so
        are its source chunks, and every job before it). Raises what that job raised."""
        if job >= _IN_FLIGHT:
            self._jobs[job - _IN_FLIGHT].result()

    def submit(self, job: int, first: int, chunks: list[tuple[memoryview, bool]]) -> None:
        """Seal ``chunks`` (plaintext, final) numbered from ``first``; the views must stay
        valid until job ``job + 3`` is ready. A whole file of one job is sealed inline."""
        if job == 0 and chunks[-1][1]:
            self._seal(job, first, chunks, None)
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="teeflow-seal")
        previous = self._jobs[-1] if self._jobs else None
        self._jobs.append(self._pool.submit(self._seal, job, first, chunks, previous))

    def finish(self) -> None:
        """Wait for every job; raises the first failure in file order."""
        for future in self._jobs:
            future.result()

    def close(self) -> None:
        """Stop after the jobs in flight (on failure too: they hold the caller's buffers)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _seal(
        self,
        job: int,
        first: int,
        chunks: list[tuple[memoryview, bool]],
        previous: Future[None] | None,
    ) -> None:
        size = sum(len(plaintext) + TAG_SIZE for plaintext, _ in chunks)
        block = self._blocks[job % _IN_FLIGHT]
        if block is None:  # a block's first job is its largest: only the last job is shorter
            block = self._blocks[job % _IN_FLIGHT] = memoryview(bytearray(size))
        at = 0
        for counter, (plaintext, final) in enumerate(chunks, first):
            out = block[at : at + len(plaintext) + TAG_SIZE]
            nonce = _nonce(self._prefix, counter, final)
            self._aead.encrypt_into(nonce, plaintext, self._header, out)
            at += len(out)
        if previous is not None:
            previous.result()  # file order; a failed job before this one fails this one too
        self._hasher.update(block[:at])
        self._dst.write(block[:at])


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
    default) or ``"sha256"`` (version 1). ``dst.write`` receives views of reused buffers, in file
    order but from a lane thread: it must consume the bytes before it returns, as every file
    object does. Memory stays bounded whatever the size: three blocks of one job (4 MiB of
    plaintext each) and, for a source that is not an ``io.BytesIO`` (read in place), read buffers
    for three jobs and one chunk. ``nonce_prefix`` exists for known-answer tests only; leave it
    unset so it is random. Raises CryptoError for a bad chunk size, prefix or digest name; what
    ``src`` or ``dst`` raise passes through.
    """
    header, prefix = _new_header(key, chunk_size, digest, nonce_prefix)
    hasher = ContentHasher(digest)
    hasher.update(header)
    dst.write(header)
    per_job = _chunks_per_job(chunk_size)
    start = src.tell() if isinstance(src, io.BytesIO) else 0
    # Read buffers for the chunks of the jobs in flight and the one chunk read ahead.
    records = _Records(src, chunk_size, start, buffers=_IN_FLIGHT * per_job + 1)
    lanes = _Lanes(AESGCM(key.raw), header, prefix, hasher, dst)
    written = len(header)
    plain_total = 0
    try:
        current = records.read(chunk_size)
        counter = 0
        job = 0
        while True:
            lanes.ready(job)
            first = counter
            chunks: list[tuple[memoryview, bool]] = []
            final = False
            while not final and len(chunks) < per_job:
                following = records.read(chunk_size) if len(current) == chunk_size else None
                final = not following
                chunks.append((current, final))
                written += len(current) + TAG_SIZE
                plain_total += len(current)
                counter += 1
                if following is not None:
                    current = following
            lanes.submit(job, first, chunks)
            if final:
                lanes.finish()
                return SealInfo(hasher.hexdigest(), written, plain_total)
            job += 1
    finally:
        lanes.close()
        records.close()
