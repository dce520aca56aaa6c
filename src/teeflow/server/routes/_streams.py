"""Streaming request bodies into the blob store and blobs out to clients, in bounded memory."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect

from teeflow.server.app import Platform
from teeflow.server.blobs import BlobNotFound, BlobTooLarge
from teeflow.server.errors import ApiError

__all__ = ["BLOB_RESPONSE", "UPLOAD_BODY", "receive_blob", "send_blob"]

_READ = 1 << 20


# A download route declares ``response_class=Response`` (no media type of its own), so the
# schema lists 200 as octet-stream only and its errors as JSON.
BLOB_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The ciphertext (a sealed file)",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "description": "The ciphertext, streamed (with or without a Content-Length)",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"upload exceeds the limit of {limit} bytes")


async def receive_blob(
    request: Request,
    platform: Platform,
    key: str,
    *,
    expected_sha256: str | None = None,
    max_bytes: int | None = None,
) -> tuple[str, int]:
    """Stream the body into blob ``key``; return (content digest, size). Nothing is kept on
    failure. ``expected_sha256`` (the X-Content-SHA256 header) is a content digest string.

    ApiError 413 over ``max_upload_bytes`` or ``max_bytes``, whichever is smaller."""
    limit = platform.settings.max_upload_bytes
    if max_bytes is not None:
        limit = min(limit, max_bytes)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    # Opening and committing may be network calls (S3), so they run off the event loop too.
    writer = platform.blobs.writer(key, max_bytes=limit)
    await run_in_threadpool(writer.__enter__)
    try:
        async for chunk in request.stream():
            if chunk:
                await run_in_threadpool(writer.write, chunk)
        if expected_sha256 is not None and writer.hexdigest() != expected_sha256:
            raise ApiError.invalid("uploaded bytes do not match the declared digest; upload again")
    except BaseException as exc:
        writer.__exit__(type(exc), exc, exc.__traceback__)  # discard; nothing is stored
        if isinstance(exc, BlobTooLarge):
            raise _too_large(limit) from None
        if isinstance(exc, ClientDisconnect):
            # The client gave up mid-upload: nothing was stored; say so instead of crashing.
            raise ApiError(
                400, "upload_interrupted", "the upload was interrupted; nothing was stored"
            ) from None
        raise
    await run_in_threadpool(writer.__exit__, None, None, None)
    return writer.digest, writer.size


def send_blob(
    platform: Platform, key: str, *, filename: str, headers: dict[str, str] | None = None
) -> StreamingResponse:
    """Stream blob ``key`` to the client; :class:`ApiError` 404 when there is none.

    The blob is opened once, here, and its size taken from the open handle, so a row blob is
    one database read (and a file one open) instead of an existence check, a size and a read."""
    try:
        handle = platform.blobs.open(key)
    except BlobNotFound:
        raise ApiError.not_found("content") from None
    try:
        size = _size(handle) if handle.seekable() else platform.blobs.size(key)
    except BlobNotFound:  # deleted between the open and the size (an S3 object)
        handle.close()
        raise ApiError.not_found("content") from None
    except BaseException:
        handle.close()
        raise

    def chunks() -> Iterator[bytes]:
        with handle:
            while block := handle.read(_READ):
                yield block

    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{filename}"',
            **(headers or {}),
        },
    )


def _size(handle: BinaryIO) -> int:
    """Bytes from the start of a seekable ``handle`` to its end, left at the start."""
    size = handle.seek(0, io.SEEK_END)
    handle.seek(0)
    return size
