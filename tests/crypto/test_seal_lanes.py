"""seal_stream on two lanes: streams of many jobs seal to the same bytes, and bind the same digest,
as the one-pass seal_bytes, in file order, from any source; failures stop it cleanly."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time

import blake3
import pytest

from teeflow.crypto import DataKey, seal_bytes, seal_stream, unseal_bytes
from teeflow.crypto._seal import _chunks_per_job

CHUNK = 64
JOB = _chunks_per_job(CHUNK) * CHUNK  # plaintext bytes per job at this chunk size
PREFIX = b"\x07" * 7
SIZES = {
    "one job": JOB,
    "one job + 1": JOB + 1,
    "two jobs - 1": 2 * JOB - 1,
    "three jobs": 3 * JOB,
    "three jobs + 1 chunk": 3 * JOB + CHUNK,
    "ten jobs + 5": 10 * JOB + 5,
}


class _Stream(io.RawIOBase):
    """A readable stream that is not a BytesIO (so seal_stream reads it into its buffers), handing
    out at most ``piece`` bytes per read, each after ``pause`` seconds (a read that lets the
    other lane run, as a file or socket does)."""

    def __init__(self, data: bytes, piece: int, pause: float = 0.0) -> None:
        self._data = io.BytesIO(data)
        self._piece = piece
        self._pause = pause

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        time.sleep(self._pause)
        chunk = self._data.read(min(self._piece, len(buffer)))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class _Recorder(io.RawIOBase):
    """A sink that copies every write and the thread it came from; fails on write ``fail_at``."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.parts: list[bytes] = []
        self.threads: set[int] = set()
        self._fail_at = fail_at

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        if len(self.parts) == self._fail_at:
            raise OSError("disk full")
        view = memoryview(data)  # type: ignore[arg-type]
        self.parts.append(bytes(view))
        self.threads.add(threading.get_ident())
        return view.nbytes


@pytest.mark.parametrize("size", SIZES.values(), ids=SIZES.keys())
@pytest.mark.parametrize("source", ["in memory", "stream"])
def test_many_jobs_seal_to_the_one_pass_bytes_and_digest(size: int, source: str) -> None:
    key = DataKey.generate()
    plaintext = os.urandom(size)
    src = io.BytesIO(plaintext) if source == "in memory" else _Stream(plaintext, 1000, 0.0005)
    sink = _Recorder()

    info = seal_stream(src, sink, key, chunk_size=CHUNK, nonce_prefix=PREFIX)  # type: ignore[arg-type]
    sealed = b"".join(sink.parts)

    assert sealed == seal_bytes(plaintext, key, chunk_size=CHUNK, nonce_prefix=PREFIX)
    assert info.ciphertext_digest == "blake3:" + blake3.blake3(sealed).hexdigest()
    assert info.ciphertext_size == len(sealed)
    assert info.plaintext_size == size
    assert unseal_bytes(sealed, key) == plaintext
    assert (len(sink.threads) > 1) == (size > JOB)  # more than one job: sealed on the lanes


def test_version_1_seals_on_the_lanes_too() -> None:
    key = DataKey.generate()
    plaintext = os.urandom(5 * JOB + 3)
    out = io.BytesIO()

    info = seal_stream(
        io.BytesIO(plaintext), out, key, chunk_size=CHUNK, nonce_prefix=PREFIX, digest="sha256"
    )

    reference = seal_bytes(plaintext, key, chunk_size=CHUNK, nonce_prefix=PREFIX, digest="sha256")
    assert out.getvalue() == reference
    assert info.ciphertext_digest == hashlib.sha256(reference).hexdigest()


def test_an_in_memory_source_is_left_after_what_was_sealed() -> None:
    key = DataKey.generate()
    plaintext = os.urandom(4 * JOB)
    src = io.BytesIO(b"skipped" + plaintext)
    src.seek(7)

    info = seal_stream(src, io.BytesIO(), key, chunk_size=CHUNK)

    assert info.plaintext_size == len(plaintext)
    assert src.tell() == 7 + len(plaintext)


def test_a_failing_write_stops_sealing_and_nothing_follows_it() -> None:
    key = DataKey.generate()
    plaintext = os.urandom(10 * JOB)
    sink = _Recorder(fail_at=3)  # the header, then two jobs, then the failure

    with pytest.raises(OSError, match="disk full"):
        seal_stream(io.BytesIO(plaintext), sink, key, chunk_size=CHUNK, nonce_prefix=PREFIX)

    reference = seal_bytes(plaintext, key, chunk_size=CHUNK, nonce_prefix=PREFIX)
    written = b"".join(sink.parts)
    assert len(sink.parts) == 3
    assert reference.startswith(written)  # what was written is the file's prefix, in order


class _Broken(_Stream):
    def __init__(self, data: bytes, fail_after: int) -> None:
        super().__init__(data, piece=len(data))
        self._left = fail_after

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._left <= 0:
            raise OSError("read error")
        got = super().readinto(buffer[: self._left])
        self._left -= got
        return got


def test_a_failing_read_stops_sealing() -> None:
    key = DataKey.generate()
    plaintext = os.urandom(10 * JOB)

    with pytest.raises(OSError, match="read error"):
        seal_stream(_Broken(plaintext, fail_after=4 * JOB), io.BytesIO(), key, chunk_size=CHUNK)  # type: ignore[arg-type]
