"""Request dependencies: the platform, the signed-in member, the registered executor."""

from __future__ import annotations

import hashlib
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


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def get_current_user(platform: PlatformDep, credentials: Credentials) -> UserRecord:
    return authenticate_user(platform, credentials.credentials if credentials else None)


def get_current_executor(platform: PlatformDep, credentials: Credentials) -> ExecutorRecord:
    return authenticate_executor(platform, credentials.credentials if credentials else None)


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value (WebSocket routes)."""
    scheme, _, token = (authorization or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def authenticate_user(platform: Platform, token: str | None) -> UserRecord:
    """The member signed in with ``token``; ApiError 401 if none is."""
    if token is None:
        raise _unauthorized("sign in first: `teeflow account login`")
    found = platform.store.user_for_token(token_hash(token))
    if found is None:
        raise _unauthorized("token is invalid or signed out; sign in again")
    user, expires_at = found
    if expires_at <= platform.clock():
        raise _unauthorized("token expired; sign in again")
    return user


def authenticate_executor(platform: Platform, token: str | None) -> ExecutorRecord:
    """The executor registered with ``token``; ApiError 401 if none is."""
    if token is None:
        raise _unauthorized("executor token required")
    executor = platform.store.executor_by_token(token_hash(token))
    if executor is None:
        raise _unauthorized("unknown executor token; register again")
    return executor


CurrentUser = Annotated[UserRecord, Depends(get_current_user)]
CurrentExecutor = Annotated[ExecutorRecord, Depends(get_current_executor)]
