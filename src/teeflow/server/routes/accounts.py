"""Accounts: register with public keys, sign in for a bearer token, sign out.

The server never receives a private key; passwords are hashed with Argon2id.
"""

from __future__ import annotations

import math
import re
import secrets
from datetime import datetime, timedelta
from typing import Annotated

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from fastapi import APIRouter, Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, field_validator
from pydantic.config import JsonDict

from teeflow.crypto import CryptoError, PublicKey, VerifyKey, b64d, fingerprint
from teeflow.server.deps import CurrentUser, PlatformDep, token_hash
from teeflow.server.errors import ApiError, error_responses
from teeflow.server.store import Conflict, UserRecord
from teeflow.server.throttle import Throttle, client_address
from teeflow.signin import PROOF_MAX_SKEW_SECONDS, SIGN_IN_DOMAIN, sign_in_message

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


class SignInProof(BaseModel):
    """The account's signing key over :func:`~teeflow.signin.sign_in_message`: lets the
    member's own client past any backoff (server/throttle.py). The password is still needed."""

    at: str = Field(max_length=64, description="ISO 8601 time of the attempt, with offset")
    signature: str = Field(max_length=128, description="base64 Ed25519 signature")


class LoginRequest(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)
    proof: SignInProof | None = None


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
def login(body: LoginRequest, request: Request, platform: PlatformDep) -> TokenPublic:
    store, settings, now = platform.store, platform.settings, platform.clock()
    throttle = Throttle(store, settings)
    source = client_address(
        request.client.host if request.client else "",
        request.headers.get("x-forwarded-for"),
        settings.trusted_proxies,
    )
    user = store.get_user(body.username)
    if not _holds_key(user, body.proof, now):
        wait = throttle.retry_after(username=body.username, source=source, now=now)
        if wait > 0:
            raise ApiError(
                429,
                "rate_limited",
                f"too many failed sign-ins from here; try again in {math.ceil(wait)} s "
                "(`teeflow account login` with your keyring is not held back)",
            )
    try:
        if user is None:
            raise VerificationError("unknown user")
        _hasher.verify(user.password_hash, body.password)
    except VerificationError:
        throttle.failed(username=body.username, source=source, now=now)
        raise ApiError(401, "unauthorized", "wrong username or password") from None
    throttle.succeeded(username=body.username, source=source)
    token = "tf_" + secrets.token_urlsafe(32)
    expires = now + timedelta(seconds=settings.token_ttl_seconds)
    store.add_token(token_hash=token_hash(token), username=body.username, expires_at=expires)
    return TokenPublic(token=token, expires_at=expires.isoformat())


def _holds_key(user: UserRecord | None, proof: SignInProof | None, now: datetime) -> bool:
    """Whether ``proof`` is the account's signing key over a fresh sign-in message."""
    if user is None or proof is None:
        return False
    try:
        at = datetime.fromisoformat(proof.at)
        if at.tzinfo is None or abs((now - at).total_seconds()) > PROOF_MAX_SKEW_SECONDS:
            return False
        message = sign_in_message(user.username, proof.at)
        VerifyKey.from_b64(user.sign_pk).verify(SIGN_IN_DOMAIN, message, b64d(proof.signature))
    except (ValueError, CryptoError):
        return False
    return True


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
async def me(user: CurrentUser) -> UserPublic:
    return public_user(user)


@router.get("/users/{username}", responses=error_responses(401, 404, 422))
def get_user(username: str, _: CurrentUser, platform: PlatformDep) -> UserPublic:
    user = platform.store.get_user(username)
    if user is None:
        raise ApiError.not_found(f"user {username!r}")
    return public_user(user)
