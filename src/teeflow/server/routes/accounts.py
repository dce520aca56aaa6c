"""Accounts: register with public keys, sign in for a bearer token, sign out.

The server never receives a private key; passwords are hashed with Argon2id.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator
from pydantic.config import JsonDict

from teeflow.crypto import CryptoError, PublicKey, VerifyKey, fingerprint
from teeflow.server.deps import CurrentUser, PlatformDep, token_hash
from teeflow.server.errors import ApiError, error_responses
from teeflow.server.store import Conflict, UserRecord

router = APIRouter(prefix="/v1", tags=["accounts"])
_hasher = PasswordHasher()
_USERNAME = re.compile(r"^[a-z][a-z0-9_-]{1,31}$")
# Documented in the schema; checked by the handlers, which say what to do instead.
_USERNAME_SCHEMA: JsonDict = {"pattern": _USERNAME.pattern}
_KEY_SCHEMA: JsonDict = {"pattern": r"^[A-Za-z0-9+/]{43}=$"}


class UserCreate(BaseModel):
    username: str = Field(min_length=2, max_length=32, json_schema_extra=_USERNAME_SCHEMA)
    password: str = Field(min_length=8, max_length=1024)
    sign_pk: str = Field(max_length=64, json_schema_extra=_KEY_SCHEMA)
    enc_pk: str = Field(max_length=64, json_schema_extra=_KEY_SCHEMA)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not _USERNAME.match(value):
            raise ValueError(
                "use 2-32 lowercase letters, digits, '-' or '_', starting with a letter"
            )
        return value


class UserPublic(BaseModel):
    username: str
    sign_pk: str
    enc_pk: str
    fingerprint: str


class LoginRequest(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class TokenPublic(BaseModel):
    token: str
    expires_at: str


def public_user(user: UserRecord) -> UserPublic:
    fp = fingerprint(VerifyKey.from_b64(user.sign_pk), PublicKey.from_b64(user.enc_pk))
    return UserPublic(
        username=user.username, sign_pk=user.sign_pk, enc_pk=user.enc_pk, fingerprint=fp
    )


@router.post("/users", status_code=201, responses=error_responses(409, 422))
def register(body: UserCreate, platform: PlatformDep) -> UserPublic:
    try:
        VerifyKey.from_b64(body.sign_pk)
        PublicKey.from_b64(body.enc_pk)
    except CryptoError:
        raise ApiError.invalid(
            "sign_pk and enc_pk must be base64 Ed25519 / X25519 public keys (`teeflow keys show`)"
        ) from None
    now = platform.clock()
    try:
        user = platform.store.create_user(
            username=body.username,
            password_hash=_hasher.hash(body.password),
            sign_pk=body.sign_pk,
            enc_pk=body.enc_pk,
            now=now,
        )
    except Conflict:
        raise ApiError.conflict(f"username {body.username!r} is taken; choose another") from None
    public = public_user(user)
    # Key registrations are audit events (members pin these keys: client/_pins.py). There is no
    # key-change route; one would log "user.keys_change" with the old and new fingerprints.
    platform.store.append_audit(
        actor=body.username,
        action="user.register",
        subject=body.username,
        details={"sign_pk": body.sign_pk, "enc_pk": body.enc_pk, "fingerprint": public.fingerprint},
        now=now,
    )
    return public


@router.post("/sessions", responses=error_responses(401, 422, 429))
def login(body: LoginRequest, platform: PlatformDep) -> TokenPublic:
    store, settings, now = platform.store, platform.settings, platform.clock()
    since = now - timedelta(seconds=settings.login_window_seconds)
    if (
        store.count_login_failures(username=body.username, since=since)
        >= settings.login_failures_allowed
    ):
        raise ApiError(429, "rate_limited", "too many failed sign-ins; wait a few minutes")
    user = store.get_user(body.username)
    try:
        if user is None:
            raise VerificationError("unknown user")
        _hasher.verify(user.password_hash, body.password)
    except VerificationError:
        store.record_login_failure(username=body.username, now=now)
        raise ApiError(401, "unauthorized", "wrong username or password") from None
    store.clear_login_failures(body.username)
    token = "tf_" + secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=settings.token_ttl_seconds)
    store.add_token(token_hash=token_hash(token), username=body.username, expires_at=expires)
    return TokenPublic(token=token, expires_at=expires.isoformat())


_bearer = HTTPBearer(auto_error=False)


@router.delete("/sessions", status_code=204, responses=error_responses(401))
def logout(
    user: CurrentUser,
    platform: PlatformDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    if credentials is not None:
        platform.store.revoke_token(token_hash(credentials.credentials))


@router.get("/users/me", responses=error_responses(401))
def me(user: CurrentUser) -> UserPublic:
    return public_user(user)


@router.get("/users/{username}", responses=error_responses(401, 404, 422))
def get_user(username: str, _: CurrentUser, platform: PlatformDep) -> UserPublic:
    user = platform.store.get_user(username)
    if user is None:
        raise ApiError.not_found(f"user {username!r}")
    return public_user(user)
