"""The control plane's error catalogue: a code and a public message per failure.

Internals go to the log; a client only ever sees ``{"error": {"code": …, "message": …}}``, for
the control plane's own errors, for requests that fail validation (which never echo the submitted
values back) and for unknown routes alike. Routes document the errors they answer with
:func:`error_responses`, so the OpenAPI schema lists every status a client can get.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

__all__ = ["ApiError", "ErrorBody", "error_responses", "install_error_handlers"]

_DESCRIPTIONS = {
    401: "Not signed in, or the token is invalid, expired or signed out",
    403: "Signed in, but not allowed to do this",
    404: "Not found (or not visible to you)",
    409: "Conflicts with the current state",
    413: "The upload is larger than the server's limit",
    422: "The request is malformed",
    429: "Too many attempts; wait and retry",
    503: "No enclave executor is available",
}
_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}
_MAX_PROBLEMS = 5


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


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {"code": …, "message": …}}``."""

    error: ErrorDetail


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status documented with the error body."""
    return {s: {"model": ErrorBody, "description": _DESCRIPTIONS[s]} for s in statuses}


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message}},
        headers=headers,
    )


def _validation_message(exc: RequestValidationError) -> str:
    # Names the field and the rule, never the submitted value (it may be a password or a key).
    problems = []
    for error in exc.errors()[:_MAX_PROBLEMS]:
        if error.get("type") == "json_invalid":
            problems.append("body: not valid JSON")
            continue
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
        problems.append(f"{where[:80] or 'body'}: {error.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(problems)


def install_error_handlers(app: FastAPI) -> None:
    async def handle(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, ApiError):  # pragma: no cover - registered for ApiError only
            raise exc
        return _error(exc.status, exc.code, exc.message)

    async def invalid(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RequestValidationError):  # pragma: no cover
            raise exc
        return _error(422, "invalid", _validation_message(exc))

    async def http_error(_: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, HTTPException):  # pragma: no cover
            raise exc
        if exc.status_code == 400:
            # FastAPI's answer to a body it cannot decode: one status for every malformed request.
            return _error(422, "invalid", "request body could not be parsed; send UTF-8 JSON")
        code = _CODES.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))

    app.add_exception_handler(ApiError, handle)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
