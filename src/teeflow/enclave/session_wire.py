"""The wire format of an inference session's requests and responses (docs/inference.md).

Shared by the enclave (enclave/session.py) and the member's client; pure functions, no I/O.

A request from ``requester`` with id ``request_id`` to the session of contract ``contract_hash``:

- ``ciphertext`` = HPKE (RFC 9180) seal of the request plaintext to the enclave's X25519 key with
  ``info = key_wrap_info("request", contract_hash, "<requester>:<request_id>")``;
- ``signature`` = the requester's Ed25519 signature, domain ``inference-request``, over
  :func:`request_message` (contract hash, requester, request id, SHA-256 of the ciphertext,
  NUL-separated).

The enclave answers with a JSON envelope (``{"status": "ok", "result": …}`` or
``{"status": "error", "error": "…"}``) HPKE-sealed to the requester's X25519 key with
``info = key_wrap_info("response", contract_hash, "<requester>:<request_id>")``, and signs it with
its Ed25519 key, domain ``inference-response``, over :func:`response_message`, which also binds
the request's ciphertext hash: a relay can neither forge, swap nor replay an answer.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from typing import Any

from teeflow.crypto import (
    CryptoError,
    IntegrityError,
    PrivateKey,
    PublicKey,
    SigningKey,
    VerifyKey,
    hpke_open,
    hpke_seal,
    key_wrap_info,
    sha256_hex,
)

__all__ = [
    "MAX_REQUEST_BYTES",
    "REQUEST_DOMAIN",
    "REQUEST_ID",
    "RESPONSE_DOMAIN",
    "new_request_id",
    "open_response",
    "request_info",
    "request_message",
    "request_sequence",
    "response_info",
    "response_message",
    "seal_request",
]

REQUEST_DOMAIN = "inference-request"
RESPONSE_DOMAIN = "inference-response"
REQUEST_ID = re.compile(r"^[0-9a-f]{16}-[A-Za-z0-9_-]{1,47}$")
"""A request id: 16 lowercase hex digits of its sequence number (:func:`request_sequence`), '-'
and a tag of 1 to 47 characters of A-Z, a-z, 0-9, '_' and '-' (:func:`new_request_id`). Unique
within the session; no ':' so that ``"<requester>:<request_id>"`` splits one way only. The
enclave refuses an id it saw, and one whose sequence number is at or below the oldest it still
remembers for that requester (enclave/session_replay.py)."""
MAX_REQUEST_BYTES = 4 << 20
"""Largest request ciphertext the enclave opens (and the relay accepts)."""


_ID_RULE = (
    "a request id is 16 lowercase hex digits (its sequence number), '-' and 1 to 47 characters of "
    "A-Z, a-z, 0-9, '_' and '-'; make one with new_request_id()"
)


def _checked(request_id: str) -> str:
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise CryptoError(_ID_RULE)
    return request_id


def new_request_id(tag: str | None = None) -> str:
    """A fresh request id: the requester's clock in microseconds since the Unix epoch as its
    sequence number, so ids from any of the requester's processes rise, and ``tag`` (default:
    16 random hex digits) to tell apart ids of the same microsecond.

    Raises CryptoError when ``tag`` is not 1 to 47 characters of A-Z, a-z, 0-9, '_' and '-'.
    """
    return _checked(f"{time.time_ns() // 1000:016x}-{tag or secrets.token_hex(8)}")


def request_sequence(request_id: str) -> int:
    """The sequence number a checked request id starts with (CryptoError if it is malformed)."""
    return int(_checked(request_id)[:16], 16)


def _context(requester: str, request_id: str) -> str:
    return f"{requester}:{_checked(request_id)}"


def request_info(contract_hash: str, requester: str, request_id: str) -> bytes:
    """HPKE ``info`` of a request's ciphertext."""
    return key_wrap_info("request", contract_hash, _context(requester, request_id))


def response_info(contract_hash: str, requester: str, request_id: str) -> bytes:
    """HPKE ``info`` of the enclave's answer."""
    return key_wrap_info("response", contract_hash, _context(requester, request_id))


def _message(kind: str, *fields: str) -> bytes:
    # NUL-separated fixed fields (hex hashes, a username, a checked request id): none holds NUL,
    # so the encoding is unambiguous, and it costs microseconds where canonical JSON costs tenths
    # of a millisecond on the per-request path.
    if any("\x00" in field for field in fields):
        raise CryptoError("message fields must not contain NUL")
    return "\x00".join(("teeflow/v1", kind, *fields)).encode("utf-8")


def request_message(
    contract_hash: str,
    requester: str,
    request_id: str,
    ciphertext: bytes,
    *,
    ciphertext_sha256: str | None = None,
) -> bytes:
    """What the requester signs (domain :data:`REQUEST_DOMAIN`): contract hash, requester,
    request id and the SHA-256 of the ciphertext (``ciphertext_sha256`` when the caller has
    it already)."""
    digest = ciphertext_sha256 or sha256_hex(ciphertext)
    return _message("request", contract_hash, requester, _checked(request_id), digest)


def response_message(
    contract_hash: str,
    requester: str,
    request_id: str,
    *,
    request_sha256: str,
    sealed: bytes,
) -> bytes:
    """What the enclave signs (domain :data:`RESPONSE_DOMAIN`): the request's fields and hash,
    and the SHA-256 of the sealed answer."""
    return _message(
        "response",
        contract_hash,
        requester,
        _checked(request_id),
        request_sha256,
        sha256_hex(sealed),
    )


def seal_request(
    payload: bytes,
    *,
    contract_hash: str,
    requester: str,
    request_id: str,
    enclave_key: PublicKey,
    signing_key: SigningKey,
) -> tuple[bytes, bytes]:
    """The requester's side: ``(ciphertext, signature)`` of one request."""
    info = request_info(contract_hash, requester, request_id)
    ciphertext = hpke_seal(payload, enclave_key, info=info)
    message = request_message(contract_hash, requester, request_id, ciphertext)
    return ciphertext, signing_key.sign(REQUEST_DOMAIN, message)


def open_response(
    sealed: bytes,
    signature: bytes,
    *,
    contract_hash: str,
    requester: str,
    request_id: str,
    request_ciphertext: bytes,
    enclave_key: VerifyKey,
    receiving_key: PrivateKey,
) -> dict[str, Any]:
    """The requester's side: check the enclave's signature, open the answer, return its envelope
    (``{"status": "ok", "result": …}`` or ``{"status": "error", "error": …}``).

    IntegrityError when the answer was not made by the enclave for this very request.
    """
    message = response_message(
        contract_hash,
        requester,
        request_id,
        request_sha256=sha256_hex(request_ciphertext),
        sealed=sealed,
    )
    enclave_key.verify(RESPONSE_DOMAIN, message, signature)
    payload = hpke_open(
        sealed, receiving_key, info=response_info(contract_hash, requester, request_id)
    )
    try:
        envelope = json.loads(payload)
    except ValueError:
        raise IntegrityError("the enclave's answer is not a JSON envelope") from None
    if not isinstance(envelope, dict) or envelope.get("status") not in ("ok", "error"):
        raise IntegrityError("the enclave's answer is not a JSON envelope")
    return envelope
