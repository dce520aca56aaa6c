"""The control plane's error catalogue: a code and a public message per failure.

Internals go to the log; a client only ever sees ``{"error": {"code": …, "message": …}}``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

__all__ = ["ApiError", "install_error_handlers"]


class ApiError(Exception):
    """An expected failure with an HTTP status, a stable code and a message saying what to do."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    @classmethod
    def not_found(cls, what: str) -> ApiError:
        return cls(404, "not_found", f"{what} not found (or not visible to you)")

    @classmethod
    def forbidden(cls, message: str) -> ApiError:
        return cls(403, "forbidden", message)

    @classmethod
    def conflict(cls, message: str) -> ApiError:
        return cls(409, "conflict", message)

    @classmethod
    def invalid(cls, message: str) -> ApiError:
        return cls(422, "invalid", message)


def install_error_handlers(app: FastAPI) -> None:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, ApiError):  # pragma: no cover - registered for ApiError only
            raise exc
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(
            status_code=exc.status,
            content={"error": {"code": exc.code, "message": exc.message}},
            headers=headers,
        )

    app.add_exception_handler(ApiError, handle)
