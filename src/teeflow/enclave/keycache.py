"""A local cache of the released keyring, sealed with a hardware key bound to the measurement.

Key release (docs/key-release.md) stays the source of the enclave key; this cache only saves
the round trip after a restart on TEEs that have a sealing key:

- SGX (Gramine): ``/dev/attestation/keys/_sgx_mrenclave``, the 128-bit key EGETKEY derives
  for this MRENCLAVE on this CPU (:class:`GramineSealingKey`).
- SEV-SNP: the key MSG_KEY_REQ derives from the VCEK, the guest policy and the measurement
  (``/dev/sev-guest``, :class:`SnpSealingKey`).
- TDX has no sealing key: no cache, the executor asks the key service again after a restart.

The cache file is the keyring sealed (AES-256-GCM, teeflow's sealed-file format) under a key
derived from the hardware key and the measurement. A cache that does not open (sealed for another
measurement, on another CPU, or altered) or that holds another measurement's keyring is ignored:
:meth:`KeyringCache.load` returns None and the executor falls back to key release. A cache that
opens is still used only after the key service confirms it is current (keystatus.py).
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Protocol

from teeflow.attestation import AttestationError, SevGuestDevice, snp_derived_key
from teeflow.crypto import CryptoError, DataKey, seal_bytes, unseal_bytes
from teeflow.enclave.identity import derive_key
from teeflow.enclave.keyring import Keyring

__all__ = ["GramineSealingKey", "KeyringCache", "SealingKeySource", "SnpSealingKey"]

_PURPOSE = "keyring-cache"


class SealingKeySource(Protocol):
    def sealing_key(self) -> bytes:
        """Hardware key material bound to this enclave's measurement; AttestationError if the
        device does not give one."""
        ...


class GramineSealingKey:
    """Gramine's ``_sgx_mrenclave`` key under ``root`` (``/`` in a real enclave)."""

    def __init__(self, root: Path = Path("/")) -> None:
        self._path = Path(root) / "dev" / "attestation" / "keys" / "_sgx_mrenclave"

    def sealing_key(self) -> bytes:
        try:
            key = self._path.read_bytes()
        except OSError as exc:
            raise AttestationError(
                f"cannot read the SGX sealing key at {self._path} ({exc.strerror}); is this a "
                "Gramine enclave?",
                code="provider",
            ) from exc
        if len(key) != 16:
            raise AttestationError("Gramine's _sgx_mrenclave key must be 16 bytes", code="provider")
        return key


class SnpSealingKey:
    """The SEV-SNP derived key (VCEK root, guest policy + measurement selected)."""

    def __init__(self, device: SevGuestDevice) -> None:
        self._device = device

    def sealing_key(self) -> bytes:
        return snp_derived_key(self._device)


class KeyringCache:
    """The keyring of ``measurement`` sealed at ``path`` under ``source``'s hardware key."""

    def __init__(self, path: Path, source: SealingKeySource, *, measurement: str) -> None:
        self._path = Path(path)
        self._source = source
        self._measurement = measurement

    def _key(self) -> DataKey:
        material = self._source.sealing_key()
        # HKDF wants uniform input of any length; the measurement is the context, so a cache
        # is useless to another image even on hardware whose key ignored it.
        return derive_key(
            hashlib.sha256(material).digest(), purpose=_PURPOSE, context=self._measurement
        )

    def load(self) -> Keyring | None:
        """The cached keyring, or None (no cache, another measurement's, altered, or the
        hardware key is unavailable): the caller then asks the key service."""
        try:
            blob = self._path.read_bytes()
            keyring = Keyring.from_bytes(unseal_bytes(blob, self._key()))
        except (OSError, CryptoError, ValueError, AttestationError):
            return None
        return keyring if keyring.measurement == self._measurement else None

    def drop(self) -> None:
        """Delete the cache (revoked, or superseded by a newer epoch)."""
        self._path.unlink(missing_ok=True)

    def store(self, keyring: Keyring) -> None:
        """Seal ``keyring`` to the cache (best effort: a failure only costs a key release)."""
        if keyring.measurement != self._measurement:
            raise ValueError("refusing to cache another measurement's keyring")
        with contextlib.suppress(OSError, AttestationError):
            blob = seal_bytes(keyring.to_bytes(), self._key())
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".tmp")
            tmp.write_bytes(blob)
            tmp.replace(self._path)
