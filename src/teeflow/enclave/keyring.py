"""Enclave keys with ids, and the allow-list the participants sign (docs/key-release.md).

A key id is (measurement, epoch). One measurement's keyring holds an :class:`EnclaveIdentity` per
epoch; the newest is the one executors register with, older ones stay for reading (contracts,
checkpoints and joint outputs made under them). A rotation adds an epoch; nothing is re-encrypted.

The allow-list is a document every pinned participant signs (Ed25519 over its canonical JSON,
domain ``allow-list``): which measurements may receive their key and at which epoch, and which
are revoked. Versions only go up, so an old list cannot be replayed to undo a revocation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from teeflow.crypto import CryptoError, SigningKey, VerifyKey, b64d, b64e, canonical_json
from teeflow.enclave.identity import EnclaveIdentity

__all__ = [
    "ALLOW_LIST_DOMAIN",
    "ALLOW_LIST_FORMAT",
    "AllowList",
    "AllowListError",
    "KeyId",
    "Keyring",
    "allow_list_document",
    "sign_allow_list",
    "valid_signers",
]

ALLOW_LIST_DOMAIN = "allow-list"
ALLOW_LIST_FORMAT = "teeflow-allow-list/v1"


class AllowListError(Exception):
    """An allow-list document is malformed, unsigned, or older than the one in force."""


@dataclass(frozen=True, order=True)
class KeyId:
    measurement: str
    epoch: int

    def __str__(self) -> str:
        return f"{self.measurement}:{self.epoch}"


@dataclass(frozen=True)
class Keyring:
    """Every epoch's identity for one measurement; ``current`` is the newest."""

    measurement: str
    identities: Mapping[int, EnclaveIdentity]

    def __post_init__(self) -> None:
        if not self.identities:
            raise ValueError("a keyring holds at least one epoch")

    @property
    def epoch(self) -> int:
        return max(self.identities)

    @property
    def current(self) -> EnclaveIdentity:
        return self.identities[self.epoch]

    def key_id(self, epoch: int | None = None) -> KeyId:
        return KeyId(self.measurement, self.epoch if epoch is None else epoch)

    def for_public_keys(self, public_keys: Mapping[str, Any]) -> tuple[int, EnclaveIdentity]:
        """The (epoch, identity) whose public keys are ``public_keys``; KeyError if none."""
        wanted = dict(public_keys)
        for epoch, identity in sorted(self.identities.items(), reverse=True):
            if identity.public_keys() == wanted:
                return epoch, identity
        raise KeyError("no epoch of this enclave key has these public keys")

    def to_bytes(self) -> bytes:
        """Canonical JSON: {"measurement", "epochs": {epoch: b64 identity}} (secret material)."""
        epochs = {str(e): b64e(i.to_bytes()) for e, i in self.identities.items()}
        return canonical_json({"measurement": self.measurement, "epochs": epochs})

    @classmethod
    def from_bytes(cls, raw: bytes) -> Keyring:
        """Inverse of :meth:`to_bytes`; ValueError on anything malformed."""
        import json

        try:
            doc = json.loads(raw)
            identities = {
                int(e): EnclaveIdentity.from_bytes(b64d(v)) for e, v in doc["epochs"].items()
            }
            return cls(str(doc["measurement"]), identities)
        except (ValueError, KeyError, TypeError, AttributeError, CryptoError) as exc:
            raise ValueError("keyring is malformed") from exc


@dataclass(frozen=True)
class AllowList:
    """A verified allow-list: (tee, measurement) -> epoch, revoked measurements, version."""

    version: int
    entries: Mapping[tuple[str, str], int]
    revoked: frozenset[str]

    @classmethod
    def empty(cls) -> AllowList:
        return cls(0, {}, frozenset())

    def epoch_for(self, tee: str, measurement: str) -> int | None:
        """The epoch released to ``measurement`` on ``tee``; None if not allowed or revoked."""
        if measurement in self.revoked:
            return None
        return self.entries.get((tee, measurement))

    def measurements(self, tee: str) -> frozenset[str]:
        return frozenset(m for (t, m) in self.entries if t == tee and m not in self.revoked)

    @classmethod
    def verify(cls, document: Mapping[str, Any], *, signers: frozenset[str]) -> AllowList:
        """Check every pinned signer (b64 Ed25519) signed ``document``; return its content.

        ``document`` = {"body": {...}, "signatures": {signer b64: signature b64}}. Raises
        AllowListError naming what is missing.
        """
        if not signers:
            raise AllowListError("the key service pins no allow-list signers; configure them")
        try:
            body = dict(document["body"])
            signatures = dict(document["signatures"])
            if body.get("format") != ALLOW_LIST_FORMAT:
                raise AllowListError(f'allow-list format must be "{ALLOW_LIST_FORMAT}"')
            version = int(body["version"])
            entries = {
                (str(e["tee"]), str(e["measurement"]).lower()): int(e["epoch"])
                for e in body["entries"]
            }
            revoked = frozenset(str(m).lower() for m in body.get("revoked", []))
        except (KeyError, TypeError, ValueError) as exc:
            raise AllowListError(
                f"allow-list document is malformed ({type(exc).__name__})"
            ) from exc
        if any(epoch < 1 for epoch in entries.values()):
            raise AllowListError("allow-list epochs start at 1")
        message = canonical_json(body)
        for signer in sorted(signers):
            signature = signatures.get(signer)
            if not isinstance(signature, str):
                raise AllowListError(f"participant {signer[:12]}… has not signed the allow-list")
            try:
                VerifyKey.from_b64(signer).verify(ALLOW_LIST_DOMAIN, message, b64d(signature))
            except CryptoError:
                raise AllowListError(
                    f"signature of participant {signer[:12]}… on the allow-list does not verify"
                ) from None
        return cls(version, entries, revoked)


def allow_list_document(
    *, version: int, entries: Sequence[tuple[str, str, int]], revoked: Sequence[str] = ()
) -> dict[str, Any]:
    """An unsigned allow-list document: {"body": {...}, "signatures": {}}.

    ``entries`` are (tee, measurement hex, epoch). Raises AllowListError if the body would not
    verify (bad version, epoch, TEE or measurement).
    """
    body = {
        "format": ALLOW_LIST_FORMAT,
        "version": version,
        "entries": [
            {"tee": tee, "measurement": m.lower(), "epoch": epoch} for tee, m, epoch in entries
        ],
        "revoked": sorted(m.lower() for m in revoked),
    }
    _check_body(body)
    return {"body": body, "signatures": {}}


def _check_body(body: Mapping[str, Any]) -> None:
    if body.get("format") != ALLOW_LIST_FORMAT:
        raise AllowListError(f'allow-list format must be "{ALLOW_LIST_FORMAT}"')
    version = body.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise AllowListError("allow-list version must be an integer from 1")
    for entry in body.get("entries", []):
        if entry.get("tee") not in ("sim", "sgx", "tdx", "sev-snp"):
            raise AllowListError(f"unknown TEE {entry.get('tee')!r}; use sim, sgx, tdx or sev-snp")
        try:
            bytes.fromhex(str(entry.get("measurement")))
        except ValueError:
            raise AllowListError(f"measurement {entry.get('measurement')!r} is not hex") from None
        epoch = entry.get("epoch")
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
            raise AllowListError("allow-list epochs are integers from 1")


def sign_allow_list(document: Mapping[str, Any], signing_key: SigningKey) -> dict[str, Any]:
    """``document`` with ``signing_key``'s signature over its body added (others kept)."""
    try:
        body = dict(document["body"])
        signatures = {str(k): str(v) for k, v in dict(document.get("signatures", {})).items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise AllowListError("allow-list document needs a body and signatures") from exc
    _check_body(body)
    signatures[signing_key.verify_key.b64()] = b64e(
        signing_key.sign(ALLOW_LIST_DOMAIN, canonical_json(body))
    )
    return {"body": body, "signatures": signatures}


def valid_signers(document: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """(signers whose signature verifies, signers whose signature does not) of ``document``."""
    message = canonical_json(dict(document["body"]))
    good, bad = set(), set()
    for signer, signature in dict(document.get("signatures", {})).items():
        try:
            VerifyKey.from_b64(str(signer)).verify(ALLOW_LIST_DOMAIN, message, b64d(str(signature)))
            good.add(str(signer))
        except (CryptoError, ValueError):
            bad.add(str(signer))
    return frozenset(good), frozenset(bad)
