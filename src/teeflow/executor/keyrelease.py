"""The executor host's side of key release: HTTP to the key service (through the control
plane's ``/kbs/v0`` relay), and the evidence provider for ``--tee``.

Untrusted plumbing: the enclave (teeflow.enclave.keyrelease) checks everything it returns.
"""

from __future__ import annotations

import argparse
import logging
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from teeflow.attestation import (
    TSM_ROOT,
    Claims,
    Evidence,
    EvidenceProvider,
    GramineSgxProvider,
    Policy,
    SevGuestFile,
    SimProvider,
    SimQuotingKey,
    TsmProvider,
    verify_evidence,
)
from teeflow.enclave.boot import BootedEnclave, boot_with_key_release
from teeflow.enclave.keycache import GramineSealingKey, SealingKeySource, SnpSealingKey
from teeflow.enclave.keyrelease import KeyReleaseError
from teeflow.keyservice.app import SESSION_COOKIE

__all__ = [
    "HttpKeyReleaseTransport",
    "add_tee_arguments",
    "boot_from_args",
    "provider_for",
    "sealing_for",
]

log = logging.getLogger("teeflow.executor")


class HttpKeyReleaseTransport:
    """RCAR over HTTP; the ``kbs-session-id`` cookie from auth is sent back explicitly (a
    cookie jar may drop cookies of a bare IP host)."""

    def __init__(self, server_url: str, *, verify: ssl.SSLContext | bool = True) -> None:
        self._http = httpx.Client(base_url=server_url, timeout=30.0, verify=verify)
        self._session = ""

    def _json(self, response: httpx.Response) -> Mapping[str, Any]:
        if response.status_code >= 400:
            try:
                reason = str(response.json().get("message", response.text))
            except ValueError:
                reason = response.text[:200]
            raise KeyReleaseError(f"key service refused (HTTP {response.status_code}): {reason}")
        data: Mapping[str, Any] = response.json()
        return data

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise KeyReleaseError(
                f"cannot reach the key service through {self._http.base_url} "
                f"({type(exc).__name__}); check the control plane's URL and that its key "
                "service is up"
            ) from exc

    def _cookie(self) -> dict[str, str]:
        return {"Cookie": f"{SESSION_COOKIE}={self._session}"}

    def auth(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        response = self._send("POST", "/kbs/v0/auth", json=dict(request))
        challenge = self._json(response)
        self._session = response.cookies.get(SESSION_COOKIE) or ""
        self._http.cookies.clear()
        return challenge

    def attest(self, attestation: Mapping[str, Any]) -> None:
        self._json(
            self._send("POST", "/kbs/v0/attest", json=dict(attestation), headers=self._cookie())
        )

    def resource(self) -> Mapping[str, Any]:
        path = "/kbs/v0/resource/teeflow/enclave-key/current"
        return self._json(self._send("GET", path, headers=self._cookie()))

    def status(self, request: Mapping[str, Any]) -> Mapping[str, Any]:
        return self._json(
            self._send("POST", "/kbs/v0/status", json=dict(request), headers=self._cookie())
        )

    def close(self) -> None:
        self._http.close()


def add_tee_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device-root",
        type=Path,
        default=None,
        help="root of the TEE device tree: / for Gramine's /dev/attestation (sgx), "
        f"{TSM_ROOT} for configfs-tsm (tdx, sev-snp)",
    )
    parser.add_argument(
        "--tsm-entry",
        default=None,
        help="use this existing configfs-tsm report entry instead of making one per report",
    )
    parser.add_argument(
        "--sev-guest",
        type=Path,
        default=Path("/dev/sev-guest"),
        help="the SEV-SNP guest device whose derived key seals the local keyring cache",
    )
    parser.add_argument(
        "--key-service-policy",
        type=Path,
        default=None,
        help="Policy the key service's own evidence must meet; turns on key release "
        "(required for sgx, tdx and sev-snp)",
    )


def provider_for(args: argparse.Namespace) -> EvidenceProvider:
    if args.tee == "sim":
        return SimProvider(SimQuotingKey.load_or_create(args.data_dir / "platform"))
    if args.tee == "sgx":
        return GramineSgxProvider(root=args.device_root or Path("/"))
    if args.tee in ("tdx", "sev-snp"):
        return TsmProvider(args.tee, root=args.device_root or TSM_ROOT, name=args.tsm_entry)
    raise SystemExit(f"unknown --tee {args.tee!r}; use sim, sgx, tdx or sev-snp")


def boot_from_args(
    args: argparse.Namespace, server_url: str, *, verify: ssl.SSLContext | bool = True
) -> BootedEnclave:
    """Boot by key release through ``server_url``'s relay (KeyReleaseError if refused);
    ``verify`` is the TLS setting from :func:`teeflow.tls.client_verify`."""
    policy = Policy.from_file(args.key_service_policy)

    def service_verifier(evidence: Evidence, now: datetime) -> Claims:
        # The key service runs in the simulated TEE here; hardware collateral for a key service
        # on SGX/TDX/SEV-SNP is not wired (docs/key-release.md).
        return verify_evidence(evidence, now=now, sim_quoting_keys=policy.sim_quoting_keys)

    transport = HttpKeyReleaseTransport(server_url, verify=verify)
    try:
        booted = boot_with_key_release(
            provider=provider_for(args),
            transport=transport,
            service_policy=policy,
            service_verifier=service_verifier,
            now=lambda: datetime.now(UTC),
            sealing=sealing_for(args),
            cache_path=args.data_dir / "keyring-cache.sealed",
        )
    finally:
        transport.close()
    how = "the hardware-sealed cache" if booted.keyring_from_cache else "key release"
    log.info("enclave key epoch %s from %s", booted.keyring.epoch if booted.keyring else "-", how)
    return booted


def sealing_for(args: argparse.Namespace) -> SealingKeySource | None:
    """The hardware sealing key that caches the keyring: Gramine's ``_sgx_mrenclave`` on sgx,
    the SNP derived key (``--sev-guest``) on sev-snp, none on tdx (it asks again each boot)."""
    if args.tee == "sgx":
        return GramineSealingKey(args.device_root or Path("/"))
    if args.tee == "sev-snp":
        return SnpSealingKey(SevGuestFile(args.sev_guest))
    return None
