"""A synchronous HTTP client that calls an ASGI app in-process.

``starlette.testclient`` warns on import with this httpx version (warnings are errors here), so
tests drive the app through ``httpx.ASGITransport`` on a private event loop instead. Request
bodies given as a list of chunks are streamed without a Content-Length (chunked), as a client
that streams a large file does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx


async def _chunks(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


class AppClient:
    """``client.request(...)`` / ``.get`` / ``.post`` / ``.put`` / ``.delete`` against ``app``."""

    def __init__(self, app: Any, *, token: str | None = None, source: str = "127.0.0.1") -> None:
        self._loop = asyncio.new_event_loop()
        self._client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=(source, 50000)),
            base_url="http://testserver",
        )
        if token is not None:
            self._client.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        content = kwargs.get("content")
        if isinstance(content, list):
            kwargs["content"] = _chunks(content)
        return self._loop.run_until_complete(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("PUT", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def close(self) -> None:
        try:
            self._loop.run_until_complete(self._client.aclose())
        finally:
            self._loop.close()

    def __enter__(self) -> AppClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
