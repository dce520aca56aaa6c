"""Evidence providers: ask the local TEE for evidence over 64 bytes of report data.

- ``sgx``: Gramine's /dev/attestation pseudo-files (write user_report_data, read quote).
- ``tdx`` / ``sev-snp``: the Linux configfs-tsm interface (Documentation/ABI/testing/
  configfs-tsm): mkdir a report entry, write inblob, read outblob, and compare
  ``generation`` before and after so a concurrent writer cannot swap the report.
- ``sim``: the simulated quoting key (no hardware protection).

Device roots are injectable so tests can run against fake device trees.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol

from teeflow.attestation._errors import AttestationError
from teeflow.attestation._model import REPORT_DATA_SIZE, Evidence, TeeType, check_tee
from teeflow.attestation._sim import SimQuotingKey, sim_measurement

__all__ = [
    "EvidenceProvider",
    "GramineSgxProvider",
    "SimProvider",
    "TsmProvider",
    "get_provider",
]

TSM_ROOT = Path("/sys/kernel/config/tsm/report")
_TSM_PROVIDER = {"tdx": "tdx_guest", "sev-snp": "sev_guest"}


class EvidenceProvider(Protocol):
    """Anything that turns 64 bytes of report data into Evidence of its TEE."""

    @property
    def tee(self) -> TeeType: ...

    def get_evidence(self, report_data: bytes) -> Evidence: ...


def _check_report_data(report_data: bytes) -> None:
    if len(report_data) != REPORT_DATA_SIZE:
        raise AttestationError(
            f"report_data must be {REPORT_DATA_SIZE} bytes (use report_data_for)", code="config"
        )


def _device_error(what: str, exc: OSError) -> AttestationError:
    return AttestationError(
        f"cannot {what} ({exc.strerror or exc}); is this process running inside the TEE?",
        code="provider",
    )


class GramineSgxProvider:
    """SGX DCAP quotes from inside a Gramine enclave (``sgx.remote_attestation = "dcap"``)."""

    def __init__(self, *, root: Path = Path("/")) -> None:
        self._dev = Path(root) / "dev" / "attestation"

    @property
    def tee(self) -> TeeType:
        return "sgx"

    def get_evidence(self, report_data: bytes) -> Evidence:
        _check_report_data(report_data)
        try:
            kind = (self._dev / "attestation_type").read_text().strip()
            if kind != "dcap":
                raise AttestationError(
                    f'Gramine attestation type is "{kind}"; set sgx.remote_attestation = "dcap"',
                    code="provider",
                )
            (self._dev / "user_report_data").write_bytes(report_data)
            quote = (self._dev / "quote").read_bytes()
        except OSError as exc:
            raise _device_error("read a quote from /dev/attestation", exc) from exc
        return Evidence(tee="sgx", raw=quote)


class TsmProvider:
    """TDX quotes or SEV-SNP reports from configfs-tsm in a confidential VM guest."""

    def __init__(
        self,
        tee: Literal["tdx", "sev-snp"],
        *,
        root: Path = TSM_ROOT,
        name: str | None = None,
    ) -> None:
        if tee not in _TSM_PROVIDER:
            raise AttestationError(f"configfs-tsm serves tdx and sev-snp, not {tee}", code="config")
        self._tee: TeeType = tee
        self._root = Path(root)
        self._name = name

    @property
    def tee(self) -> TeeType:
        return self._tee

    def get_evidence(self, report_data: bytes) -> Evidence:
        _check_report_data(report_data)
        entry = self._root / (self._name or f"teeflow-{os.getpid()}-{secrets.token_hex(8)}")
        created = not entry.exists()
        try:
            entry.mkdir(exist_ok=True)
            (entry / "inblob").write_bytes(report_data)
            generation = (entry / "generation").read_text().strip()
            provider = (entry / "provider").read_text().strip()
            if provider != _TSM_PROVIDER[self._tee]:
                raise AttestationError(
                    f"configfs-tsm provider is {provider!r}, not {_TSM_PROVIDER[self._tee]!r}; "
                    f"this guest is not a {self._tee} guest",
                    code="provider",
                )
            blob = (entry / "outblob").read_bytes()
            if (entry / "generation").read_text().strip() != generation:
                raise AttestationError(
                    "configfs-tsm report changed while it was read (another writer); retry",
                    code="provider",
                )
        except OSError as exc:
            raise _device_error(f"get a report from {self._root}", exc) from exc
        finally:
            if created:
                # Best effort: a leftover entry holds no secret and is dropped with the guest.
                with contextlib.suppress(OSError):
                    entry.rmdir()
        return Evidence(tee=self._tee, raw=blob)


class SimProvider:
    """Simulated evidence signed by a local :class:`SimQuotingKey` (no hardware protection)."""

    def __init__(
        self,
        key: SimQuotingKey,
        *,
        measurement: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._key = key
        self._measurement = measurement or sim_measurement()
        self._clock = clock

    @property
    def tee(self) -> TeeType:
        return "sim"

    @property
    def measurement(self) -> str:
        return self._measurement

    def get_evidence(self, report_data: bytes) -> Evidence:
        _check_report_data(report_data)
        return self._key.quote(report_data, measurement=self._measurement, now=self._clock())


def get_provider(
    tee: str, *, data_dir: Path | None = None, root: Path | None = None
) -> EvidenceProvider:
    """The provider for ``tee``; ``sim`` needs ``data_dir`` for its quoting key."""
    kind = check_tee(tee)
    if kind == "sim":
        if data_dir is None:
            raise AttestationError("the sim provider needs data_dir for its key", code="config")
        return SimProvider(SimQuotingKey.load_or_create(data_dir))
    if kind == "sgx":
        return GramineSgxProvider(root=root or Path("/"))
    return TsmProvider(kind, root=root or TSM_ROOT)
