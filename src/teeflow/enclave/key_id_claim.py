"""The key id (measurement, epoch) an executor registers with, signed by its enclave key.

The registration record names the key id the executor holds (docs/key-release.md, "Key ids").
The control plane stores it, but the operator must not be able to alter it unnoticed, so the
enclave signs it with the Ed25519 key whose public half its evidence binds (report_data): a
member who attested the evidence checks the signature with the attested key and the measurement
against the evidence's (:func:`check_key_id_claim`, used by the client's ``attest`` and
``audit verify``).

Wire form: ``{"measurement": hex, "epoch": int, "signature": b64 Ed25519 over canonical JSON
{"measurement", "epoch"} in the ``executor-key-id`` domain}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from teeflow.crypto import CryptoError, SigningKey, VerifyKey, b64d, b64e, canonical_json
from teeflow.enclave.keyring import KeyId

__all__ = ["KEY_ID_DOMAIN", "KeyIdClaimError", "check_key_id_claim", "sign_key_id"]

KEY_ID_DOMAIN = "executor-key-id"


class KeyIdClaimError(ValueError):
    """A registration's key id is missing, malformed or not signed by the attested key."""


def _message(key_id: KeyId) -> bytes:
    return canonical_json({"measurement": key_id.measurement, "epoch": key_id.epoch})


def sign_key_id(key_id: KeyId, signing_key: SigningKey) -> dict[str, Any]:
    """The wire form of ``key_id`` signed with the enclave's ``signing_key``."""
    signature = signing_key.sign(KEY_ID_DOMAIN, _message(key_id))
    return {"measurement": key_id.measurement, "epoch": key_id.epoch, "signature": b64e(signature)}


def check_key_id_claim(
    claim: Mapping[str, Any] | None, *, public_keys: Mapping[str, str], measurement: str
) -> KeyId:
    """The key id of a registration, checked: signed by ``public_keys["ed25519"]`` (the key
    the attested evidence binds) and naming ``measurement`` (the evidence's).

    Raises KeyIdClaimError saying what is wrong (the operator altered or dropped it, or an
    executor from before key ids).
    """
    if claim is None:
        raise KeyIdClaimError(
            "the executor's registration names no key id; restart the executor with this "
            "teeflow version"
        )
    try:
        key_id = KeyId(str(claim["measurement"]), int(claim["epoch"]))
        VerifyKey.from_b64(str(public_keys["ed25519"])).verify(
            KEY_ID_DOMAIN, _message(key_id), b64d(str(claim["signature"]))
        )
    except (KeyError, TypeError, ValueError, CryptoError) as exc:
        raise KeyIdClaimError(
            "the executor's key id is not signed by its attested enclave key: the registration "
            "record was altered"
        ) from exc
    if key_id.measurement != measurement:
        raise KeyIdClaimError(
            f"the executor's key id names measurement {key_id.measurement[:16]}..., its "
            f"evidence {measurement[:16]}...: the registration record was altered"
        )
    return key_id
