"""Is a cached keyring still current? A cheap, attested question to the key service.

A hardware-sealed keyring cache (keycache.py) saves a key release after a restart, but by itself
it would outlive a revocation of this measurement and miss a rotation (a new epoch) on its host.
So an executor that boots from a cache first asks the key service, in one RCAR session without
evidence or key transfer:

1. Request / Challenge as in keyrelease.py: the service's evidence binds its signing key and our
   client nonce, so only the attested service can answer.
2. ``POST /kbs/v0/status`` ``{"tee", "measurement"}`` -> ``{"protected", "signature"}``;
   ``protected`` is base64url JSON
   ``{"nonce", "tee", "measurement", "epoch", "allow_list_version"}`` signed (``STATUS_DOMAIN``)
   by the service. ``epoch`` is null when the measurement is not on the allow-list or is
   revoked. The nonce is the session's, so an old answer cannot be replayed.

:func:`cached_keyring_is_current` then says whether the cache may be used: same measurement,
not revoked, and its newest epoch is the one released now. Anything else (including a service
that cannot be reached or does not attest) raises or returns False: fail closed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from teeflow.attestation import Policy
from teeflow.crypto import CryptoError, b64d, b64e, canonical_json
from teeflow.enclave.keyrelease import (
    STATUS_DOMAIN,
    KeyReleaseError,
    KeyReleaseTransport,
    Verifier,
    b64url,
    open_session,
)
from teeflow.enclave.keyring import Keyring

__all__ = ["KeyStatus", "cached_keyring_is_current", "fetch_key_status", "status_answer"]


@dataclass(frozen=True)
class KeyStatus:
    """What the key service releases to ``measurement`` now: ``epoch`` (None: not allowed or
    revoked) under allow-list ``allow_list_version``."""

    tee: str
    measurement: str
    epoch: int | None
    allow_list_version: int


def status_answer(
    status: KeyStatus, nonce: bytes, sign: Callable[[str, bytes], bytes]
) -> dict[str, str]:
    """The service's signed answer (``sign(domain, bytes) -> signature``) for ``nonce``."""
    header = {"nonce": b64url(nonce), "tee": status.tee, "measurement": status.measurement,
              "epoch": status.epoch, "allow_list_version": status.allow_list_version}  # fmt: skip
    protected = b64url(canonical_json(header))
    return {"protected": protected, "signature": b64e(sign(STATUS_DOMAIN, protected.encode()))}


def fetch_key_status(
    transport: KeyReleaseTransport,
    *,
    tee: str,
    measurement: str,
    service_policy: Policy,
    service_verifier: Verifier,
    now: Callable[[], datetime],
) -> KeyStatus:
    """Ask the attested key service what it releases to ``measurement`` now.

    Raises KeyReleaseError if the service does not attest, or its answer is not signed by it,
    answers another session, or names another measurement.
    """
    service_key, nonce = open_session(
        transport, tee=tee, service_policy=service_policy,
        service_verifier=service_verifier, now=now,
    )  # fmt: skip
    answer: Mapping[str, Any] = transport.status({"tee": tee, "measurement": measurement})
    try:
        protected = str(answer["protected"])
        service_key.verify(STATUS_DOMAIN, protected.encode("ascii"), b64d(answer["signature"]))
        header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
        epoch = header["epoch"]
        status = KeyStatus(
            tee=str(header["tee"]),
            measurement=str(header["measurement"]),
            epoch=None if epoch is None else int(epoch),
            allow_list_version=int(header["allow_list_version"]),
        )
        fresh = header["nonce"] == b64url(nonce)
    except (KeyError, TypeError, ValueError, CryptoError) as exc:
        raise KeyReleaseError(
            "the key service's status answer does not verify (altered, or not from the "
            "attested key service)"
        ) from exc
    if not fresh or (status.tee, status.measurement) != (tee, measurement):
        raise KeyReleaseError("the key service's status answers another session or measurement")
    return status


def cached_keyring_is_current(keyring: Keyring, status: KeyStatus) -> bool:
    """Whether a cached ``keyring`` may be used: the service still releases its measurement
    (not revoked, on the allow-list) and at exactly its newest epoch (a newer one means a
    rotation: ask for the new keyring; an older one means a rollback: ask again too)."""
    return (
        status.measurement == keyring.measurement
        and status.epoch is not None
        and status.epoch == keyring.epoch
    )
