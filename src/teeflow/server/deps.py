"""Request dependencies: the platform, the signed-in member, the registered executor."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from starlette.requests import HTTPConnection

from teeflow.server.app import Platform
from teeflow.server.errors import ApiError
from teeflow.server.store import ExecutorRecord, UserRecord

__all__ = [
    "MAX_SEQUENCE",
    "CurrentExecutor",
    "CurrentUser",
    "PlatformDep",
    "authenticate_executor",
    "authenticate_user",
    "bearer_token",
    "token_hash",
]

# Sequence numbers (audit, events, checkpoints) are 32-bit SQL INTEGERs on every backend; a
# larger number in a request is refused (422) rather than overflowing the database driver.
MAX_SEQUENCE = 2**31 - 1


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]

_SIGN_IN = "sign in first: `teeflow account login`"
_NO_EXECUTOR = "executor token required"

T = TypeVar("T")


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


class BearerAuth(SecurityBase, Generic[T]):
    """``Authorization: Bearer <token>`` resolved to its holder in one dependency.

    To the OpenAPI schema it is FastAPI's ``HTTPBearer`` scheme (same name and model). At run
    time it reads the header and looks the token up itself: FastAPI resolves every dependency
    of a request through the same generic machinery, so the scheme, the platform and the lookup
    as three nested dependencies cost about three times the one. Raises :class:`ApiError` 401
    when the header is missing, is not a bearer token, or names no live holder.
    """

    def __init__(self, resolve: Callable[[Platform, str | None], Awaitable[T]]) -> None:
        self.model = HTTPBearerModel()
        self.scheme_name = "HTTPBearer"
        self._resolve = resolve

    async def __call__(self, request: HTTPConnection) -> T:
        # A coroutine: FastAPI runs a plain ``def`` dependency in a worker thread, a hop that
        # costs more than the lookup (store/_credentials.py says why it may run on the loop).
        scheme, token = get_authorization_scheme_param(request.headers.get("authorization"))
        platform: Platform = request.app.state.platform
        bearer = token if scheme.lower() == "bearer" and token else None
        return await self._resolve(platform, bearer)


async def _current_user(platform: Platform, token: str | None) -> UserRecord:
    if token is None:
        raise _unauthorized(_SIGN_IN)
    return _signed_in(platform, await platform.store.credentials.user_async(token_hash(token)))


async def _current_executor(platform: Platform, token: str | None) -> ExecutorRecord:
    if token is None:
        raise _unauthorized(_NO_EXECUTOR)
    return _registered(await platform.store.credentials.executor_async(token_hash(token)))


get_current_user = BearerAuth(_current_user)
get_current_executor = BearerAuth(_current_executor)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value (WebSocket routes)."""
    scheme, _, token = (authorization or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def authenticate_user(platform: Platform, token: str | None) -> UserRecord:
    """The member signed in with ``token``; ApiError 401 if none is. Blocking (WebSocket
    admission runs it in a worker thread)."""
    if token is None:
        raise _unauthorized(_SIGN_IN)
    return _signed_in(platform, platform.store.user_for_token(token_hash(token)))


def authenticate_executor(platform: Platform, token: str | None) -> ExecutorRecord:
    """The executor registered with ``token``; ApiError 401 if none is. Blocking."""
    if token is None:
        raise _unauthorized(_NO_EXECUTOR)
    return _registered(platform.store.executor_by_token(token_hash(token)))


def _signed_in(platform: Platform, found: tuple[UserRecord, datetime] | None) -> UserRecord:
    if found is None:
        raise _unauthorized("token is invalid or signed out; sign in again")
    user, expires_at = found
    if expires_at <= platform.clock():
        raise _unauthorized("token expired; sign in again")
    return user


def _registered(executor: ExecutorRecord | None) -> ExecutorRecord:
    if executor is None:
        raise _unauthorized("unknown executor token; register again")
    return executor


CurrentUser = Annotated[UserRecord, Depends(get_current_user)]
CurrentExecutor = Annotated[ExecutorRecord, Depends(get_current_executor)]
