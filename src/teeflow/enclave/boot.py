"""Start an enclave: measure, unseal (or create) the identity, and produce evidence binding it.

Only the simulated TEE boots on a machine without TEE hardware. On SGX (Gramine) or a TDX /
SEV-SNP guest the evidence providers in teeflow.attestation apply; the boot path for them (reading
the own measurement from the quote and hardware sealing keys) is not wired yet and says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from teeflow.attestation import (
    Evidence,
    SimProvider,
    SimQuotingKey,
    report_data_for,
    sim_measurement,
)
from teeflow.crypto import read_or_create_secret
from teeflow.enclave.identity import EnclaveIdentity
from teeflow.enclave.runtime import EnclaveRuntime

__all__ = ["BootedEnclave", "boot_enclave"]


@dataclass(frozen=True)
class BootedEnclave:
    runtime: EnclaveRuntime
    provider: SimProvider

    def evidence(self, nonce: bytes | None = None) -> Evidence:
        """Fresh evidence whose report_data binds the enclave's public key bundle (and nonce)."""
        bundle = self.runtime.identity.public_key_bundle()
        return self.provider.get_evidence(report_data_for(bundle, nonce))


def _platform_secret(platform_dir: Path) -> bytes:
    return read_or_create_secret(platform_dir / "sealing-secret", lambda: os.urandom(32))


def boot_enclave(*, tee: str, platform_dir: Path) -> BootedEnclave:
    if tee != "sim":
        raise RuntimeError(
            f"booting a {tee!r} executor is not supported yet; run with --tee sim "
            "(evidence verification for sgx/tdx/sev-snp works: `teeflow attest verify`)"
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
