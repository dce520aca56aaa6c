"""Start an enclave: obtain its key, learn its measurement, and produce evidence binding the key.

Two ways to the enclave key (decision 0015):

- :func:`boot_enclave` (sim, one host): the identity is sealed under the platform's sealing
  secret in its data directory, as before (decision 0003).
- :func:`boot_with_key_release` (every TEE, any host): the key service releases the keyring of
  this enclave's measurement after attesting it (RCAR, docs/key-release.md). On sgx/tdx/sev-snp
  the measurement is read from the enclave's own hardware report. On SGX and SEV-SNP the keyring
  is cached sealed under the hardware sealing key (keycache.py); on TDX a restarted executor
  asks again.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from teeflow.attestation import (
    Evidence,
    EvidenceProvider,
    Policy,
    SimProvider,
    SimQuotingKey,
    read_report,
    report_data_for,
    sim_measurement,
)
from teeflow.crypto import read_or_create_secret
from teeflow.enclave.identity import EnclaveIdentity
from teeflow.enclave.key_id_claim import sign_key_id
from teeflow.enclave.keycache import KeyringCache, SealingKeySource
from teeflow.enclave.keyrelease import (
    KeyReleaseError,
    KeyReleaseTransport,
    Verifier,
    obtain_keyring,
)
from teeflow.enclave.keyring import Keyring
from teeflow.enclave.keystatus import cached_keyring_is_current, fetch_key_status
from teeflow.enclave.runtime import EnclaveRuntime

__all__ = ["BootedEnclave", "boot_enclave", "boot_with_key_release"]


@dataclass(frozen=True)
class BootedEnclave:
    runtime: EnclaveRuntime
    provider: EvidenceProvider
    keyring: Keyring | None = None
    """Every epoch of the enclave key when it came by key release; None for a sealed identity."""
    keyring_from_cache: bool = False
    """True when the keyring came from the local hardware-sealed cache, not a new release."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def evidence(self, nonce: bytes | None = None) -> Evidence:
        """Fresh evidence whose report_data binds the enclave's public key bundle (and nonce)."""
        bundle = self.runtime.identity.public_key_bundle()
        with self._lock:  # one report at a time through the device (configfs-tsm, Gramine)
            return self.provider.get_evidence(report_data_for(bundle, nonce))

    def key_id_claim(self) -> dict[str, Any]:
        """The key id (measurement, epoch) the executor registers with, signed by the
        enclave's attested key (key_id_claim.py)."""
        return sign_key_id(self.runtime.key_id, self.runtime.identity.signing_key)

    def runtime_for(self, contract: Mapping[str, Any]) -> EnclaveRuntime:
        """The runtime holding the key epoch ``contract`` was approved for.

        After a rotation, tasks approved under an older epoch still run (and resume their
        checkpoints) with that epoch's key; anything else gets the current one, and the
        enclave's checks then refuse a contract naming keys it does not hold.
        """
        if self.keyring is None:
            return self.runtime
        try:
            epoch, identity = self.keyring.for_public_keys(contract["executor"]["public_keys"])
        except (KeyError, TypeError):
            return self.runtime
        if identity is self.runtime.identity:
            return self.runtime
        chosen = copy.copy(self.runtime)
        chosen.identity, chosen.key_epoch = identity, epoch
        return chosen


def _platform_secret(platform_dir: Path) -> bytes:
    return read_or_create_secret(platform_dir / "sealing-secret", lambda: os.urandom(32))


def boot_enclave(*, tee: str, platform_dir: Path) -> BootedEnclave:
    """A sim enclave whose identity is sealed in ``platform_dir`` (one host only)."""
    if tee != "sim":
        raise RuntimeError(
            f"a {tee!r} executor gets its enclave key by key release: start it with "
            "--key-service-policy FILE (docs/key-release.md)"
        )
    measurement = sim_measurement()
    identity = EnclaveIdentity.load_or_create(
        platform_dir / "enclave",
        measurement=measurement,
        platform_secret=_platform_secret(platform_dir),
    )
    provider = SimProvider(SimQuotingKey.load_or_create(platform_dir), measurement=measurement)
    runtime = EnclaveRuntime(identity=identity, tee="sim", measurement=measurement)
    return BootedEnclave(runtime=runtime, provider=provider)


def _own_measurement(provider: EvidenceProvider, evidence: Evidence | None = None) -> str:
    """This enclave's measurement, read from its own report (or the sim provider)."""
    if isinstance(provider, SimProvider):
        return provider.measurement
    return read_report(evidence or provider.get_evidence(bytes(64))).measurement


def boot_with_key_release(
    *,
    provider: EvidenceProvider,
    transport: KeyReleaseTransport,
    service_policy: Policy,
    service_verifier: Verifier,
    now: Callable[[], datetime],
    sealing: SealingKeySource | None = None,
    cache_path: Path | None = None,
) -> BootedEnclave:
    """Boot on ``provider``'s TEE with the keyring the key service releases to it.

    With ``sealing`` and ``cache_path`` (SGX, SEV-SNP), a keyring cached there under the hardware
    sealing key for this measurement is used instead of a new release, and a released one is
    cached; a cache that does not open is ignored (keycache.py). A cache is used only after the
    attested key service confirms it is current (keystatus.py: not revoked, same newest epoch);
    otherwise it is deleted and a full key release follows (refused if revoked).

    Raises KeyReleaseError (refused, service not attested, unreachable -- also with a cache: a
    cache is never used unconfirmed, fail closed -- or a keyring for another measurement).
    """
    cache = None
    if sealing is not None and cache_path is not None:
        cache = KeyringCache(cache_path, sealing, measurement=_own_measurement(provider))
        cached = cache.load()
        if cached is not None:
            status = fetch_key_status(
                transport, tee=provider.tee, measurement=cached.measurement,
                service_policy=service_policy, service_verifier=service_verifier, now=now,
            )  # fmt: skip
            if cached_keyring_is_current(cached, status):
                return _booted(provider, cached, cached.measurement, from_cache=True)
            cache.drop()
    released = obtain_keyring(
        transport=transport,
        provider=provider,
        service_policy=service_policy,
        service_verifier=service_verifier,
        now=now,
    )
    measurement = _own_measurement(provider, released.evidence)
    keyring = released.keyring
    if keyring.measurement != measurement:
        raise KeyReleaseError(
            "the key service released the key of another measurement; refusing to use it"
        )
    if cache is not None:
        cache.store(keyring)
    return _booted(provider, keyring, measurement, from_cache=False)


def _booted(
    provider: EvidenceProvider, keyring: Keyring, measurement: str, *, from_cache: bool
) -> BootedEnclave:
    runtime = EnclaveRuntime(
        identity=keyring.current, tee=provider.tee, measurement=measurement,
        key_epoch=keyring.epoch, keyring=keyring,
    )  # fmt: skip
    return BootedEnclave(
        runtime=runtime, provider=provider, keyring=keyring, keyring_from_cache=from_cache
    )
