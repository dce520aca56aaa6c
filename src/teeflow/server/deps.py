"""Request dependencies: the platform, the signed-in member, the registered executor."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

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

_bearer = HTTPBearer(auto_error=False)

# Sequence numbers (audit, events, checkpoints) are 32-bit SQL INTEGERs on every backend; a
# larger number in a request is refused (422) rather than overflowing the database driver.
MAX_SEQUENCE = 2**31 - 1


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


_SIGN_IN = "sign in first: `teeflow account login`"
_NO_EXECUTOR = "executor token required"


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


async def get_current_user(platform: PlatformDep, credentials: Credentials) -> UserRecord:
    # A coroutine: FastAPI runs a plain ``def`` dependency in a worker thread, a hop that cost
    # more than the lookup (store/_credentials.py says why the lookup may run on the loop).
    if credentials is None:
        raise _unauthorized(_SIGN_IN)
    found = await platform.store.credentials.user_async(token_hash(credentials.credentials))
    return _signed_in(platform, found)


async def get_current_executor(platform: PlatformDep, credentials: Credentials) -> ExecutorRecord:
    if credentials is None:
        raise _unauthorized(_NO_EXECUTOR)
    found = await platform.store.credentials.executor_async(token_hash(credentials.credentials))
    return _registered(found)


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
