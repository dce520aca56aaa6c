"""Row blobs: small ciphertexts kept in the ``row_blobs`` table (server/row_blobs.py).

They are inserted only with the row that names them (store.finish, :class:`NewOutput` with
``content``); here they are read and deleted.
"""

from __future__ import annotations

from sqlalchemy import delete, func, select

from teeflow.server.models import RowBlobRow
from teeflow.server.store._base import StoreBase

__all__ = ["RowBlobsMixin"]

_ROWS = RowBlobRow.__table__


class RowBlobsMixin(StoreBase):
    def row_blob(self, blob_key: str) -> bytes | None:
        """The bytes stored under ``blob_key``, or None."""
        with self._core_read() as connection:
            content = connection.scalar(select(_ROWS.c.content).where(_ROWS.c.blob_key == blob_key))
        return None if content is None else bytes(content)

    def row_blob_size(self, blob_key: str) -> int | None:
        """Size in bytes of the blob under ``blob_key``, or None when there is none."""
        with self._core_read() as connection:
            size = connection.scalar(
                select(func.length(_ROWS.c.content)).where(_ROWS.c.blob_key == blob_key)
            )
        return None if size is None else int(size)

    def delete_row_blob(self, blob_key: str) -> bool:
        """Delete the blob under ``blob_key``; True if there was one."""
        with self._write() as session:
            result = session.execute(delete(RowBlobRow).where(RowBlobRow.blob_key == blob_key))
            return bool(result.rowcount)  # type: ignore[attr-defined]
