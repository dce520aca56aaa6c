"""Attested key release, the executor's side (RCAR, after Trustee's KBS protocol; see
docs/key-release.md).

1. Request: ``{"version", "tee", "extra-params": {"client-nonce"}}``.
2. Challenge: ``{"nonce", "extra-params": {"service": {"evidence", "public_keys"}}}``; the
   service's own evidence binds its public keys and our client-nonce, so a host that answers in
   its place (and would hand us a key it knows) fails here.
3. Attestation: ``{"tee-pubkey": JWK of an ephemeral X25519 key, "tee-evidence": evidence}``,
   report_data = SHA-256(canonical JSON of the JWK) || nonce.
4. Response: ``{"protected", "ciphertext", "signature"}``: the keyring HPKE-sealed (RFC 9180) to
   the ephemeral key, ``info`` binding the protected header, signed by the service.

The transport is the untrusted host's (:class:`KeyReleaseTransport`); every byte it returns is
checked here.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from teeflow.attestation import (
    AttestationError,
    Claims,
    Evidence,
    EvidenceProvider,
    Policy,
    check_binding,
    report_data_for,
)
from teeflow.crypto import (
    CryptoError,
    PrivateKey,
    PublicKey,
    VerifyKey,
    b64d,
    canonical_json,
    hpke_open,
)
from teeflow.enclave.keyring import Keyring

__all__ = [
    "PROTOCOL_VERSION",
    "RESPONSE_DOMAIN",
    "STATUS_DOMAIN",
    "KeyReleaseError",
    "KeyReleaseTransport",
    "ReleasedKeys",
    "Verifier",
    "b64url",
    "jwk_x25519",
    "obtain_keyring",
    "open_session",
    "response_info",
    "x25519_from_jwk",
]

PROTOCOL_VERSION = "0.1.0"
RESPONSE_DOMAIN = "kbs-response"
STATUS_DOMAIN = "kbs-key-status"
TEE_NAMES = {"sgx": "intel-sgx", "tdx": "intel-tdx", "sev-snp": "amd-sev-snp", "sim": "sample"}

Verifier = Callable[[Evidence, datetime], Claims]
"""Evidence at an instant -> authentic Claims (no policy), raising AttestationError."""


class KeyReleaseError(Exception):
    """Key release failed; the message says which step and what to do (never key material)."""


class KeyReleaseTransport(Protocol):
    """The untrusted host's HTTP calls to the key service (possibly relayed)."""

    def auth(self, request: Mapping[str, Any]) -> Mapping[str, Any]: ...

    def attest(self, attestation: Mapping[str, Any]) -> None: ...

    def resource(self) -> Mapping[str, Any]: ...

    def status(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        """POST ``/kbs/v0/status`` in the session auth opened (keystatus.py)."""
        ...


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwk_x25519(public_key: PublicKey) -> dict[str, str]:
    """RFC 8037 OKP JWK of an X25519 public key."""
    return {"kty": "OKP", "crv": "X25519", "alg": "HPKE-Base-X25519-SHA256-A256GCM",
            "x": b64url(public_key.raw)}  # fmt: skip


def x25519_from_jwk(jwk: Mapping[str, Any]) -> PublicKey:
    """The key of :func:`jwk_x25519`'s output; CryptoError/ValueError on anything else."""
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "X25519":
        raise ValueError("tee-pubkey must be an OKP X25519 JWK")
    return PublicKey(_unb64url(str(jwk["x"])))


def response_info(protected: str) -> bytes:
    """HPKE ``info`` of a key-release response: binds the protected header (nonce, key ids)."""
    return b"teeflow/v1/kbs-response\x00" + protected.encode("ascii")


@dataclass(frozen=True)
class ReleasedKeys:
    keyring: Keyring
    tee: str
    evidence: Evidence
    """The evidence this enclave sent for the release (its own measurement is read from it)."""


def _check_service(
    challenge: Mapping[str, Any],
    client_nonce: bytes,
    *,
    service_policy: Policy,
    service_verifier: Verifier,
    now: datetime,
) -> VerifyKey:
    try:
        service = challenge["extra-params"]["service"]
        public_keys = {k: str(v) for k, v in service["public_keys"].items()}
        claims = service_verifier(Evidence.from_json(service["evidence"]), now)
        service_policy.check(claims, now=now)
        check_binding(claims, canonical_json(public_keys), client_nonce)
        return VerifyKey.from_b64(public_keys["ed25519"])
    except AttestationError as exc:
        raise KeyReleaseError(f"the key service did not attest: {exc}") from exc
    except (KeyError, TypeError, AttributeError, CryptoError) as exc:
        raise KeyReleaseError("the key service's challenge is malformed") from exc


def open_session(
    transport: KeyReleaseTransport,
    *,
    tee: str,
    service_policy: Policy,
    service_verifier: Verifier,
    now: Callable[[], datetime],
) -> tuple[VerifyKey, bytes]:
    """Steps 1-2: send a Request, check the Challenge. Returns (the attested service's signing
    key, the session's nonce). KeyReleaseError if the service does not attest."""
    client_nonce = os.urandom(32)
    request = {
        "version": PROTOCOL_VERSION,
        "tee": TEE_NAMES[tee],
        "extra-params": {"client-nonce": b64url(client_nonce)},
    }
    challenge = transport.auth(request)
    service_key = _check_service(
        challenge, client_nonce, service_policy=service_policy,
        service_verifier=service_verifier, now=now(),  # after the challenge was made
    )  # fmt: skip
    try:
        return service_key, _unb64url(str(challenge["nonce"]))
    except (KeyError, ValueError) as exc:
        raise KeyReleaseError("the key service's challenge has no valid nonce") from exc


def obtain_keyring(
    *,
    transport: KeyReleaseTransport,
    provider: EvidenceProvider,
    service_policy: Policy,
    service_verifier: Verifier,
    now: Callable[[], datetime],
) -> ReleasedKeys:
    """Run RCAR with the key service and return the keyring for this enclave's measurement.

    Raises KeyReleaseError if the service does not attest, refuses us, or answers with anything
    that does not open under our ephemeral key or verify under its attested key.
    """
    service_key, nonce = open_session(
        transport, tee=provider.tee, service_policy=service_policy,
        service_verifier=service_verifier, now=now,
    )  # fmt: skip
    ephemeral = PrivateKey.generate()
    tee_pubkey = jwk_x25519(ephemeral.public_key)
    evidence = provider.get_evidence(report_data_for(canonical_json(tee_pubkey), nonce))
    transport.attest({"tee-pubkey": tee_pubkey, "tee-evidence": evidence.to_json()})
    response = transport.resource()
    try:
        protected, ciphertext = str(response["protected"]), b64d(response["ciphertext"])
        service_key.verify(
            RESPONSE_DOMAIN, protected.encode("ascii") + ciphertext, b64d(response["signature"])
        )
        header = json.loads(_unb64url(protected))
        if _unb64url(header["nonce"]) != nonce:
            raise KeyReleaseError("the key-release response answers another challenge")
        keyring = Keyring.from_bytes(
            hpke_open(ciphertext, ephemeral, info=response_info(protected))
        )
    except (KeyError, TypeError, ValueError, CryptoError) as exc:
        raise KeyReleaseError(
            "the key-release response does not verify or open (altered, or not from the "
            "attested key service)"
        ) from exc
    return ReleasedKeys(keyring=keyring, tee=provider.tee, evidence=evidence)
