"""Small ciphertexts kept in the database, behind the same :class:`BlobStore` interface.

A small output (at most ``Settings.row_output_bytes``) is stored in the ``row_blobs`` table in the
same transaction that records the finish and its receipt: one commit, one fsync, as durable as
the finish itself, instead of a blob file with a file and a directory fsync of its own
(decision 0030). Its blob key starts with :data:`ROW_PREFIX`; :class:`RowBackedBlobStore` sends
such keys to the database and every other key to the file or S3 store, so every reader (output
download, ``dataset from-output``, joint outputs used as inputs, deletion) works for both without
knowing which one holds the bytes. Integrity is the same either way: a member checks the bytes
against the digest the enclave signed in its receipt.
"""

from __future__ import annotations

import io
from typing import BinaryIO, Protocol

from teeflow.server.blobs import BlobNotFound, BlobStore, BlobWriter, validate_key

__all__ = ["ROW_PREFIX", "RowBackedBlobStore", "RowBlobs", "row_key"]

ROW_PREFIX = "rows/"
"""Blob keys under this prefix live in the ``row_blobs`` table, not in the blob store."""


def row_key(key: str) -> str:
    """The key of blob ``key`` when its bytes are kept in the database; ValueError if unsafe."""
    validate_key(key)
    return ROW_PREFIX + key


class RowBlobs(Protocol):
    """What the store offers for row blobs (store/_row_blobs.py)."""

    def row_blob(self, blob_key: str) -> bytes | None: ...

    def row_blob_size(self, blob_key: str) -> int | None: ...

    def delete_row_blob(self, blob_key: str) -> bool: ...


class RowBackedBlobStore:
    """A :class:`BlobStore` whose ``rows/`` keys read from the database and the rest from
    ``files``. Row blobs are written only by the transaction that records them (store.finish);
    :meth:`writer` on a ``rows/`` key raises ValueError."""

    def __init__(self, files: BlobStore, rows: RowBlobs) -> None:
        self.files = files
        self._rows = rows

    def writer(self, key: str, *, max_bytes: int | None = None) -> BlobWriter:
        if key.startswith(ROW_PREFIX):
            raise ValueError("row blobs are written in the transaction that records them")
        return self.files.writer(key, max_bytes=max_bytes)

    def open(self, key: str) -> BinaryIO:
        if not key.startswith(ROW_PREFIX):
            return self.files.open(key)
        content = self._rows.row_blob(key)
        if content is None:
            raise BlobNotFound(f"no blob {key!r}")
        return io.BytesIO(content)

    def exists(self, key: str) -> bool:
        if not key.startswith(ROW_PREFIX):
            return self.files.exists(key)
        return self._rows.row_blob_size(key) is not None

    def delete(self, key: str) -> bool:
        if not key.startswith(ROW_PREFIX):
            return self.files.delete(key)
        return self._rows.delete_row_blob(key)

    def size(self, key: str) -> int:
        if not key.startswith(ROW_PREFIX):
            return self.files.size(key)
        size = self._rows.row_blob_size(key)
        if size is None:
            raise BlobNotFound(f"no blob {key!r}")
        return size
