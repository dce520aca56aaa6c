"""Blob storage for ciphertext (sealed datasets, outputs, checkpoints).

The control plane stores only ciphertext here; integrity comes from the sealed-file format and the
ciphertext hashes the contract pins, not from this store. What this store guarantees is that a blob
is either absent or complete: writers stream into a temporary file in the destination directory,
hash as they go, and only on a clean exit fsync and atomically rename it into place. An exception,
an oversize upload or an interruption leaves no file under the key. :mod:`teeflow.server.s3_blobs`
keeps the same guarantee in an S3-compatible object store; :func:`open_blob_store` picks the store
the settings select.

Keys are relative paths of segments made of ``[A-Za-z0-9._-]`` separated by ``/``; no empty, ``.``
or ``..`` segment, no segment starting with ``.`` (temporary files do), no absolute path. Anything
else raises :class:`ValueError`.

Hierarchy::

    BlobError
     ├── BlobNotFound   no blob under the key
     └── BlobTooLarge   the upload exceeded ``max_bytes`` (nothing was stored)
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, BinaryIO, Protocol

from teeflow.crypto import SealedDigest, private_directory

if TYPE_CHECKING:
    from teeflow.server.settings import Settings

__all__ = [
    "BlobError",
    "BlobNotFound",
    "BlobStore",
    "BlobTooLarge",
    "BlobWriter",
    "LocalBlobStore",
    "open_blob_store",
    "validate_key",
]

_SEGMENT = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9._\-]*")
_MAX_KEY_LENGTH = 512  # the width of the blob_key columns
_TEMP_PREFIX = ".tmp-"


class BlobError(Exception):
    """Base of the blob store's errors."""


class BlobNotFound(BlobError):
    """No blob is stored under the key."""


class BlobTooLarge(BlobError):
    """The upload exceeded the size limit; nothing was stored."""


def validate_key(key: str) -> tuple[str, ...]:
    """Split ``key`` into path segments; :class:`ValueError` if it is not a safe key."""
    if not key or len(key) > _MAX_KEY_LENGTH or key.startswith("/"):
        raise ValueError("blob key must be a non-empty relative path")
    segments = tuple(key.split("/"))
    for segment in segments:
        if segment in ("", ".", "..") or not _SEGMENT.fullmatch(segment):
            raise ValueError(
                "blob key segments may use only letters, digits, '.', '_' and '-', "
                "must not start with '.', and must not be empty"
            )
    return segments


class BlobWriter(Protocol):
    """A streaming upload; ``digest`` (the content digest a contract binds, crypto.SealedDigest)
    and ``size`` are readable once it has committed."""

    def write(self, data: bytes) -> None: ...

    def hexdigest(self) -> str: ...

    @property
    def digest(self) -> str: ...

    @property
    def size(self) -> int: ...

    def __enter__(self) -> BlobWriter: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class BlobStore(Protocol):
    def writer(self, key: str, *, max_bytes: int | None = None) -> BlobWriter: ...

    def open(self, key: str) -> BinaryIO: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...


class _LocalWriter:
    def __init__(self, final: Path, max_bytes: int | None) -> None:
        self._final = final
        self._max_bytes = max_bytes
        self._hash = SealedDigest()  # BLAKE3 or SHA-256, as the sealed file's header names
        self._written = 0
        self._file: BinaryIO | None = None
        self._temp: Path | None = None
        self._committed = False

    def __enter__(self) -> _LocalWriter:
        if self._file is not None or self._committed:
            raise RuntimeError("a blob writer can be used once")
        private_directory(self._final.parent)
        # mkstemp creates the file mode 0600
        fd, name = tempfile.mkstemp(dir=self._final.parent, prefix=_TEMP_PREFIX, suffix=".part")
        self._temp = Path(name)
        self._file = os.fdopen(fd, "wb")
        return self

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise RuntimeError("write() outside the writer's `with` block")
        if self._max_bytes is not None and self._written + len(data) > self._max_bytes:
            self._discard()
            raise BlobTooLarge(f"blob is larger than the limit of {self._max_bytes} bytes")
        self._file.write(data)
        self._hash.update(data)
        self._written += len(data)

    def hexdigest(self) -> str:
        """Content digest of what was written so far (crypto.SealedDigest): check it before the
        block ends to refuse a blob."""
        return self._hash.hexdigest()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None or self._file is None:
            self._discard()
            return
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            if self._temp is None:  # pragma: no cover - set in __enter__
                raise RuntimeError("blob writer lost its temporary file")
            self._temp.replace(self._final)
            self._temp = None
            _fsync_dir(self._final.parent)
        except BaseException:
            self._discard()
            raise
        self._committed = True

    def _discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
        if self._temp is not None:
            self._temp.unlink(missing_ok=True)
            self._temp = None

    @property
    def digest(self) -> str:
        if not self._committed:
            raise RuntimeError("the digest is known only after the blob has been committed")
        return self._hash.hexdigest()

    @property
    def size(self) -> int:
        if not self._committed:
            raise RuntimeError("size is known only after the blob has been committed")
        return self._written


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable (POSIX); not possible on every platform.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LocalBlobStore:
    """Blobs as files under ``root`` (the embedded single-machine deployment)."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root).resolve()

    @property
    def root(self) -> Path:
        return self._root

    def _path(self, key: str) -> Path:
        path = self._root.joinpath(*validate_key(key))
        # Defence in depth against a symlinked directory pointing outside the root.
        if not path.resolve().is_relative_to(self._root):
            raise ValueError("blob key resolves outside the blob store")
        return path

    def writer(self, key: str, *, max_bytes: int | None = None) -> _LocalWriter:
        """A context manager that streams a new blob to ``key`` (replacing any old one on commit).

        ``with store.writer(key) as w: w.write(chunk)``; then ``w.digest`` and ``w.size``.
        """
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        return _LocalWriter(self._path(key), max_bytes)

    def sweep_temporary(self, *, older_than_s: float) -> int:
        """Delete temporary files of uploads that never finished (the writer crashed) and were
        last written more than ``older_than_s`` seconds ago; return how many. A control plane
        calls it when it starts; a live upload elsewhere keeps its file fresh."""
        cutoff = time.time() - older_than_s
        swept = 0
        for path in self._root.rglob(f"{_TEMP_PREFIX}*"):
            with contextlib.suppress(FileNotFoundError):
                if path.is_file() and path.stat().st_mtime <= cutoff:
                    path.unlink()
                    swept += 1
        return swept

    def open(self, key: str) -> BinaryIO:
        try:
            return self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
            raise BlobNotFound(f"no blob {key!r}") from exc

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> bool:
        """Delete the blob; True if there was one."""
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, IsADirectoryError):
            return False
        return True

    def size(self, key: str) -> int:
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(f"no blob {key!r}")
        return path.stat().st_size


def open_blob_store(settings: Settings) -> BlobStore:
    """The blob store ``settings.blob_store`` selects; an S3 bucket is checked to be reachable."""
    if settings.blob_store == "local":
        local = LocalBlobStore(settings.blob_dir)
        local.sweep_temporary(older_than_s=settings.stale_upload_seconds)
        return local
    # Imported here so that boto3 is loaded only where S3 is selected.
    from teeflow.server.s3_blobs import S3BlobStore

    if not settings.s3_bucket:
        raise BlobError("TEEFLOW_BLOB_STORE=s3 needs a bucket: set TEEFLOW_S3_BUCKET")
    store = S3BlobStore.connect(
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
    )
    store.check()
    return store
