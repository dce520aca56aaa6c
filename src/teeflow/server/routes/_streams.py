"""Streaming request bodies into the blob store and blobs out to clients, in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from teeflow.server.app import Platform
from teeflow.server.blobs import BlobTooLarge
from teeflow.server.errors import ApiError

__all__ = ["receive_blob", "send_blob"]

_READ = 1 << 20


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"upload exceeds the limit of {limit} bytes")


async def receive_blob(
    request: Request, platform: Platform, key: str, *, expected_sha256: str | None = None
) -> tuple[str, int]:
    """Stream the body into blob ``key``; return (sha256, size). Nothing is kept on failure."""
    limit = platform.settings.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    try:
        with platform.blobs.writer(key, max_bytes=limit) as writer:
            async for chunk in request.stream():
                if chunk:
                    await run_in_threadpool(writer.write, chunk)
            if expected_sha256 is not None and writer.hexdigest() != expected_sha256:
                raise ApiError.invalid(
                    "uploaded bytes do not match the declared SHA-256; upload again"
                )
    except BlobTooLarge:
        raise _too_large(limit) from None
    return writer.sha256, writer.size


def send_blob(platform: Platform, key: str, *, filename: str) -> StreamingResponse:
    if not platform.blobs.exists(key):
        raise ApiError.not_found("content")
    size = platform.blobs.size(key)

    def chunks() -> Iterator[bytes]:
        with platform.blobs.open(key) as handle:
            while block := handle.read(_READ):
                yield block

    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(size),
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )
