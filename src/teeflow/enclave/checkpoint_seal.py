"""Sealed checkpoints that name the enclave key id they were sealed under.

Layout: ``b"TFC1"`` | u16 big-endian length | canonical JSON ``{"measurement", "epoch"}`` (the
key id) | a sealed file (AES-256-GCM, teeflow's format) under

    derive_key(secret of that epoch, purpose="checkpoint", context=contract hash "\\0" key id)

so the key id in the clear header is bound like associated data: a header naming another key id
derives another key and the checkpoint does not open. Loading picks the named epoch's secret from
the keyring, so after a rotation a checkpoint sealed under the old epoch still resumes and nothing
is re-encrypted. A key id the enclave does not hold is refused with a clear error.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from teeflow.crypto import CryptoError, canonical_json, seal_bytes, unseal_bytes
from teeflow.enclave.identity import derive_key
from teeflow.enclave.keyring import KeyId

__all__ = ["CheckpointKeyError", "open_checkpoint", "read_key_id", "seal_checkpoint"]

_MAGIC = b"TFC1"
_MAX_HEADER = 1024


class CheckpointKeyError(Exception):
    """The checkpoint's key id is malformed, unknown to this enclave, or does not open it."""


def seal_checkpoint(payload: bytes, *, chash: str, key_id: KeyId, secret: bytes) -> bytes:
    """``payload`` sealed for contract ``chash`` under epoch ``key_id``'s ``secret``."""
    header = canonical_json({"measurement": key_id.measurement, "epoch": key_id.epoch})
    key = derive_key(secret, purpose="checkpoint", context=f"{chash}\0{key_id}")
    return _MAGIC + len(header).to_bytes(2, "big") + header + seal_bytes(payload, key)


def read_key_id(sealed: bytes) -> tuple[KeyId, bytes]:
    """(the key id a checkpoint names, the sealed rest); CheckpointKeyError if it names none."""
    if sealed[:4] != _MAGIC or len(sealed) < 6:
        raise CheckpointKeyError(
            "checkpoint names no key id (made by an older enclave, or not a checkpoint); "
            "start the task again without it"
        )
    length = int.from_bytes(sealed[4:6], "big")
    if length > _MAX_HEADER or len(sealed) < 6 + length:
        raise CheckpointKeyError("checkpoint key-id header is truncated or too long")
    try:
        doc = json.loads(sealed[6 : 6 + length])
        key_id = KeyId(str(doc["measurement"]), int(doc["epoch"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointKeyError("checkpoint key-id header is malformed") from exc
    return key_id, sealed[6 + length :]


def open_checkpoint(
    sealed: bytes, *, chash: str, secret_for: Callable[[KeyId], bytes | None]
) -> bytes:
    """The payload of a checkpoint of contract ``chash``. ``secret_for`` maps a key id to the
    secret of that epoch, or None if this enclave does not hold it.

    Raises CheckpointKeyError (unknown key id, or it does not open: altered header or data).
    """
    key_id, rest = read_key_id(sealed)
    secret = secret_for(key_id)
    if secret is None:
        raise CheckpointKeyError(
            f"checkpoint was sealed under key id {key_id.measurement[:16]}…:{key_id.epoch}, "
            "which this enclave does not hold (another measurement, or an epoch its keyring "
            "lacks); resume it on an executor of that measurement after key release"
        )
    key = derive_key(secret, purpose="checkpoint", context=f"{chash}\0{key_id}")
    try:
        return unseal_bytes(rest, key)
    except CryptoError as exc:
        raise CheckpointKeyError(
            f"checkpoint does not open under its named key id (altered header or data): {exc}"
        ) from None
