"""Progress and error events: signed by the enclave, then sealed to their one recipient.

An event leaves the enclave as ``b64(HPKE-seal(canonical JSON of the envelope))`` to the
recipient's X25519 key (RFC 9180 base mode, ``info`` = key_wrap_info("event", contract hash,
recipient)), where the envelope is::

    {"body": {"contract_hash": "…", "recipient": "bob", "attempt": "<32 hex>", "seq": 7,
              "data": {"kind": "progress" | "error", …}},
     "signature": "<b64 Ed25519 by the enclave key over the canonical body, domain EVENT_DOMAIN>"}

HPKE base mode alone proves nothing about the sender: anyone with the recipient's public key (the
operator has it) can seal a message to it. The signature is what makes an event the enclave's:
it binds the contract, the recipient, the enclave's own event sequence (``attempt`` is fresh per
enclave start, ``seq`` counts on across checkpoint resumes) and the payload, so a forged event
fails, and a replayed one is a repeat of an ``(attempt, seq)`` already seen
(docs/decisions/0012-signed-events.md).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from teeflow.crypto import (
    CryptoError,
    IntegrityError,
    PrivateKey,
    PublicKey,
    SigningKey,
    VerifyKey,
    b64d,
    b64e,
    canonical_json,
    hpke_open,
    hpke_seal,
    key_wrap_info,
)

__all__ = ["EVENT_DOMAIN", "EventCounter", "open_event", "seal_event"]

EVENT_DOMAIN = "enclave-event"
_ATTEMPT = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class EventCounter:
    """The enclave's event sequence for one task: ``seq`` continues from a checkpoint, and
    ``attempt`` tells this enclave start from an earlier one that stopped before a checkpoint."""

    seq: int = 0
    attempt: str = field(default_factory=lambda: secrets.token_hex(16))

    def next(self) -> int:
        self.seq += 1
        return self.seq


def seal_event(
    data: Mapping[str, Any],
    *,
    chash: str,
    recipient: str,
    recipient_key: PublicKey,
    signing_key: SigningKey,
    attempt: str,
    seq: int,
) -> str:
    """Sign ``data`` for ``recipient`` and seal it to ``recipient_key``; return the b64 payload."""
    body = {
        "contract_hash": chash,
        "recipient": recipient,
        "attempt": attempt,
        "seq": seq,
        "data": dict(data),
    }
    envelope = {
        "body": body,
        "signature": b64e(signing_key.sign(EVENT_DOMAIN, canonical_json(body))),
    }
    info = key_wrap_info("event", chash, recipient)
    return b64e(hpke_seal(canonical_json(envelope), recipient_key, info=info))


def open_event(
    payload: str,
    *,
    chash: str,
    recipient: str,
    receiving_key: PrivateKey,
    enclave_key: VerifyKey,
) -> Mapping[str, Any]:
    """Open and verify one event; return its body (``attempt``, ``seq``, ``data``).

    Raises IntegrityError when it does not open for ``recipient``, is not signed by
    ``enclave_key``, or is bound to another contract or recipient. The message says which.
    """
    try:
        info = key_wrap_info("event", chash, recipient)
        plain = hpke_open(b64d(payload), receiving_key, info=info)
    except (CryptoError, ValueError):
        raise IntegrityError("event does not open for you in this task") from None
    try:
        envelope = json.loads(plain)
        body, signature = envelope["body"], envelope["signature"]
        enclave_key.verify(EVENT_DOMAIN, canonical_json(body), b64d(signature))
    except (CryptoError, ValueError, KeyError, TypeError):
        raise IntegrityError("event is not signed by the task's enclave key") from None
    if body.get("contract_hash") != chash or body.get("recipient") != recipient:
        raise IntegrityError("event is signed for another task or recipient")
    if (
        not isinstance(body.get("attempt"), str)
        or not _ATTEMPT.match(body["attempt"])
        or not isinstance(body.get("seq"), int)
        or not isinstance(body.get("data"), Mapping)
    ):
        raise IntegrityError("event body is malformed")
    return dict(body)
