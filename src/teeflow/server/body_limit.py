"""A size limit on request bodies that are not streamed uploads.

Ciphertext uploads (dataset content, executor outputs and checkpoints) stream into the blob store
with their own limit (``TEEFLOW_MAX_UPLOAD_BYTES``). Every other body is JSON that FastAPI reads
whole into memory, so a hostile member could exhaust it with one huge request. This ASGI middleware
refuses such a body with 413 once it passes ``limit`` bytes (by its Content-Length at once, or while
it arrives when it is chunked), before the application sees it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["JsonBodyLimit"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

_STREAMED = re.compile(
    r"^/v1/(datasets/[^/]+/content|executor/tasks/[^/]+/(checkpoint|outputs/[^/]+))$"
)


class JsonBodyLimit:
    def __init__(self, app: App, *, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"] == "PUT" and _STREAMED.match(scope["path"])):
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or ()).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
            return
        # Read the body here (what FastAPI would do anyway), at most ``limit`` bytes of it.
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(send)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay(body, receive), send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "too_large",
                    "message": f"request body exceeds the limit of {self.limit} bytes "
                    "(TEEFLOW_MAX_JSON_BYTES); send large data as a dataset upload",
                }
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that hands ``first`` (the buffered body) over once, then defers to the
    server's own (so a later wait for the client's disconnect still works)."""
    pending = [first]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay
