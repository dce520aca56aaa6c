"""The key service: releases an enclave keyring only to attested executors (RCAR, after
Trustee's KBS; docs/key-release.md). It runs in a TEE of its own; this module is its trusted
core, the HTTP shell around it (teeflow.keyservice) is not trusted.

An executor gets the keyring of its measurement only if, in one session: it answers a nonce this
service issued and has not seen answered (single use, ``nonce_ttl``); its evidence verifies; the
evidence's report_data binds the ephemeral key the keyring is wrapped to and that nonce; the
service's policy accepts the claims (TEE type, no debug, TCB status, ...); and its measurement is
on the allow-list every pinned participant signed, not revoked. Every release and refusal is
reported to ``audit``.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

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
    SigningKey,
    b64e,
    canonical_json,
    hpke_seal,
    read_or_create_secret,
    seal_bytes,
    sha256_hex,
    unseal_bytes,
)
from teeflow.enclave.identity import EnclaveIdentity, derive_key
from teeflow.enclave.keyrelease import (
    PROTOCOL_VERSION,
    RESPONSE_DOMAIN,
    TEE_NAMES,
    Verifier,
    b64url,
    response_info,
    x25519_from_jwk,
)
from teeflow.enclave.keyring import AllowList, AllowListError, Keyring
from teeflow.enclave.keystatus import KeyStatus, status_answer

__all__ = ["KeyReleaseRefused", "KeyService"]

_TEE_BY_NAME = {name: tee for tee, name in TEE_NAMES.items()}


class KeyReleaseRefused(Exception):
    """The service refuses; ``code`` is one of unauthenticated, stale-nonce, evidence, binding,
    policy, not-allowed, bad-request. The message is public."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class _Session:
    nonce: bytes
    tee: str
    issued_at: datetime
    answered: bool = False
    claims: Claims | None = None
    tee_pubkey: Mapping[str, Any] | None = None
    evidence_sha256: str = ""


class KeyService:
    """Trusted key-release logic; thread-safe. ``state_dir`` holds only sealed state."""

    def __init__(
        self,
        *,
        state_dir: Path,
        provider: EvidenceProvider,
        measurement: str,
        sealing_secret: bytes,
        policy: Policy,
        signers: frozenset[str],
        verifier: Verifier,
        audit: Callable[[dict[str, Any]], None] = lambda record: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        nonce_ttl: timedelta = timedelta(minutes=2),
    ) -> None:
        self._dir = Path(state_dir)
        self._dir.mkdir(parents=True, exist_ok=True)
        self._provider = provider
        self._policy = policy
        self._signers = signers
        self._verifier = verifier
        self._audit = audit
        self._clock = clock
        self._nonce_ttl = nonce_ttl
        self._seal_key = derive_key(sealing_secret, purpose="key-service", context=measurement)
        self._signing_key = SigningKey.from_bytes(
            unseal_bytes(
                read_or_create_secret(
                    self._dir / "service-key.sealed",
                    lambda: seal_bytes(SigningKey.generate().to_bytes(), self._seal_key),
                ),
                self._seal_key,
            )
        )
        self._lock = threading.Lock()
        self._sessions: dict[str, _Session] = {}
        self._allow_list = self._load_allow_list()

    # -- allow-list -----------------------------------------------------------------------

    def _load_allow_list(self) -> AllowList:
        path = self._dir / "allow-list.json"
        if not path.exists():
            return AllowList.empty()
        return AllowList.verify(json.loads(path.read_text()), signers=self._signers)

    @property
    def allow_list(self) -> AllowList:
        return self._allow_list

    def allow_list_document(self) -> dict[str, Any] | None:
        """The signed document in force (public: measurements and signatures), or None."""
        path = self._dir / "allow-list.json"
        if not path.exists():
            return None
        document: dict[str, Any] = json.loads(path.read_text())
        return document

    def set_allow_list(self, document: Mapping[str, Any]) -> AllowList:
        """Install a signed allow-list (AllowListError unless newer and signed by all)."""
        allowed = AllowList.verify(document, signers=self._signers)
        with self._lock:
            if allowed.version <= self._allow_list.version:
                raise AllowListError(
                    f"allow-list version {allowed.version} is not newer than the one in force "
                    f"({self._allow_list.version}); sign a higher version"
                )
            tmp = self._dir / "allow-list.json.tmp"
            tmp.write_text(json.dumps(dict(document)))
            tmp.replace(self._dir / "allow-list.json")
            self._allow_list = allowed
        self._audit({"action": "key.allow-list", "version": allowed.version,
                     "entries": sorted(f"{t}:{m}:{e}" for (t, m), e in allowed.entries.items()),
                     "revoked": sorted(allowed.revoked)})  # fmt: skip
        return allowed

    # -- RCAR -----------------------------------------------------------------------------

    def public_keys(self) -> dict[str, str]:
        return {"ed25519": self._signing_key.verify_key.b64()}

    def auth(self, request: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """Request -> (session id, Challenge). The challenge carries the service's evidence
        bound to the client's nonce, so the executor can tell it talks to this service."""
        try:
            if request["version"] != PROTOCOL_VERSION:
                raise KeyReleaseRefused("bad-request", f"use protocol version {PROTOCOL_VERSION}")
            tee = _TEE_BY_NAME[str(request["tee"])]
            client_nonce = _unb64(str(request["extra-params"]["client-nonce"]))
            own = self._provider.get_evidence(
                report_data_for(canonical_json(self.public_keys()), client_nonce)
            )
        except (KeyError, TypeError, ValueError, AttestationError) as exc:
            raise KeyReleaseRefused("bad-request", "malformed key-release request") from exc
        session_id, nonce = secrets.token_urlsafe(24), os.urandom(32)
        now = self._clock()
        with self._lock:
            self._sessions = {
                k: s for k, s in self._sessions.items() if now - s.issued_at <= self._nonce_ttl
            }
            self._sessions[session_id] = _Session(nonce=nonce, tee=tee, issued_at=now)
        challenge = {
            "nonce": b64url(nonce),
            "extra-params": {
                "service": {"evidence": own.to_json(), "public_keys": self.public_keys()}
            },
        }
        return session_id, challenge

    def attest(self, session_id: str, attestation: Mapping[str, Any]) -> None:
        """Attestation -> accepted, or KeyReleaseRefused (each refusal is audited)."""
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            fresh = (
                session is not None
                and not session.answered
                and now - session.issued_at <= self._nonce_ttl
            )
            if session is not None:
                session.answered = True  # one answer per nonce, right or wrong
        if session is None or not fresh:
            self._refuse(
                "stale-nonce",
                "no fresh challenge for this session: the nonce is "
                "unknown, expired or already answered; start again with a new request",
            )
        try:
            evidence = Evidence.from_json(attestation["tee-evidence"])
            tee_pubkey = dict(attestation["tee-pubkey"])
            x25519_from_jwk(tee_pubkey)
        except (KeyError, TypeError, ValueError, AttestationError, CryptoError):
            self._refuse("bad-request", "attestation needs tee-evidence and an X25519 tee-pubkey")
        evidence_hash = sha256_hex(evidence.raw)
        if evidence.tee != session.tee:
            self._refuse("evidence", f"evidence is {evidence.tee}, the request said {session.tee}")
        try:
            claims = self._verifier(evidence, now)
        except AttestationError as exc:
            self._refuse("evidence", f"evidence does not verify: {exc}", evidence_hash)
        # Policy before binding: every check must pass anyway, and this order names the real
        # fault of authentic evidence from a wrong enclave (off the list, debug, old TCB).
        allowed = self._allow_list.measurements(claims.tee)
        try:
            replace(self._policy, allowed_measurements=allowed).check(claims, now=now)
        except AttestationError as exc:
            code = "not-allowed" if claims.measurement not in allowed else "policy"
            self._refuse(code, str(exc), evidence_hash, claims.measurement)
        try:
            check_binding(claims, canonical_json(tee_pubkey), session.nonce)
        except AttestationError as exc:
            self._refuse("binding", str(exc), evidence_hash, claims.measurement)
        with self._lock:
            session.claims, session.tee_pubkey = claims, tee_pubkey
            session.evidence_sha256 = evidence_hash

    def resource(self, session_id: str) -> dict[str, Any]:
        """Response: the keyring of the attested measurement, HPKE-sealed to the tee-pubkey."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None or session.claims is None or session.tee_pubkey is None:
            self._refuse("unauthenticated", "attest first: this session has no accepted evidence")
        claims = session.claims
        epoch = self._allow_list.epoch_for(claims.tee, claims.measurement)
        if epoch is None:  # revoked between attest and resource
            self._refuse("not-allowed", "measurement is no longer on the allow-list")
        keyring = self._keyring(claims.measurement, epoch)
        header = {"alg": "HPKE-Base-X25519-SHA256-A256GCM", "nonce": b64url(session.nonce),
                  "measurement": claims.measurement, "epoch": keyring.epoch}  # fmt: skip
        protected = b64url(canonical_json(header))
        recipient = x25519_from_jwk(session.tee_pubkey)
        ciphertext = hpke_seal(keyring.to_bytes(), recipient, info=response_info(protected))
        signature = self._signing_key.sign(RESPONSE_DOMAIN, protected.encode() + ciphertext)
        self._audit({"action": "key.release", "tee": claims.tee, "measurement": claims.measurement,
                     "epochs": sorted(keyring.identities), "evidence_sha256":
                     session.evidence_sha256, "simulated": claims.simulated})  # fmt: skip
        return {
            "protected": protected,
            "ciphertext": b64e(ciphertext),
            "signature": b64e(signature),
        }

    def status(self, session_id: str, request: Mapping[str, Any]) -> dict[str, str]:
        """What this service releases to ``request``'s measurement now (keystatus.py), signed
        and bound to the session's nonce; no evidence needed, nothing secret in it. The
        session's nonce is used up by the answer."""
        now = self._clock()
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None or session.answered or now - session.issued_at > self._nonce_ttl:
            self._refuse("stale-nonce", "no fresh challenge for this session; start again")
        try:
            tee, measurement = str(request["tee"]), str(request["measurement"]).lower()
            bytes.fromhex(measurement)
        except (KeyError, TypeError, ValueError):
            self._refuse("bad-request", "a status request needs tee and a hex measurement")
        if tee != session.tee:
            self._refuse("bad-request", f"status for {tee}, the request said {session.tee}")
        allowed = self._allow_list
        state = KeyStatus(tee, measurement, allowed.epoch_for(tee, measurement), allowed.version)
        return status_answer(state, session.nonce, self._signing_key.sign)

    # -- keyrings -------------------------------------------------------------------------

    def _keyring(self, measurement: str, epoch: int) -> Keyring:
        """The keyring of ``measurement`` with every epoch up to ``epoch`` (created in here)."""
        path = self._dir / f"keyring-{measurement}.sealed"
        with self._lock:
            identities: dict[int, EnclaveIdentity] = {}
            if path.exists():
                identities = dict(
                    Keyring.from_bytes(unseal_bytes(path.read_bytes(), self._seal_key)).identities
                )
            changed = False
            for e in range(1, epoch + 1):
                if e not in identities:
                    identities[e] = EnclaveIdentity.generate()
                    changed = True
            keyring = Keyring(measurement, identities)
            if changed:
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(seal_bytes(keyring.to_bytes(), self._seal_key))
                tmp.replace(path)
        # Release epochs up to the allowed one only (a later epoch may exist from before a
        # rollback of the list; it is kept, not released).
        return Keyring(measurement, {e: i for e, i in identities.items() if e <= epoch})

    def _refuse(
        self, code: str, message: str, evidence_sha256: str = "", measurement: str = ""
    ) -> NoReturn:
        self._audit({"action": "key.release.refused", "code": code, "reason": message,
                     "measurement": measurement, "evidence_sha256": evidence_sha256})  # fmt: skip
        raise KeyReleaseRefused(code, message)


def _unb64(text: str) -> bytes:
    import base64

    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(raw) != 32:
        raise ValueError("nonce must be 32 bytes")
    return raw
