"""Evidence (what a TEE produces) and Claims (what a verifier proves about it).

Claims are normalised across TEEs so that one Policy decides for every backend
(DESIGN.md, "The TEE layer").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, cast, get_args

from teeflow.attestation._errors import AttestationError
from teeflow.crypto import CryptoError, b64d, b64e

__all__ = ["PRIMARY_MEASUREMENT", "REPORT_DATA_SIZE", "TEE_TYPES", "Claims", "Evidence", "TeeType"]

TeeType = Literal["sim", "sgx", "tdx", "sev-snp"]
TEE_TYPES: tuple[TeeType, ...] = cast(tuple[TeeType, ...], get_args(TeeType))
REPORT_DATA_SIZE = 64

# The measurement a policy allow-lists for each TEE (the others stay available in Claims).
PRIMARY_MEASUREMENT: Mapping[str, str] = MappingProxyType(
    {"sgx": "mrenclave", "tdx": "mr_td", "sev-snp": "measurement", "sim": "measurement"}
)


def check_tee(value: object) -> TeeType:
    """Return ``value`` as a TeeType or raise AttestationError."""
    if value not in TEE_TYPES:
        raise AttestationError(
            f"unknown TEE type {value!r}; use one of {', '.join(TEE_TYPES)}", code="config"
        )
    return value


@dataclass(frozen=True)
class Evidence:
    """Raw evidence from one TEE: an SGX/TDX DCAP quote, an SEV-SNP report or a sim quote."""

    tee: TeeType
    raw: bytes

    def __post_init__(self) -> None:
        check_tee(self.tee)
        if not self.raw:
            raise AttestationError("evidence is empty; ask the enclave for a new quote")

    def to_json(self) -> dict[str, str]:
        """A JSON-ready dict: ``{"tee": ..., "raw": base64}``."""
        return {"tee": self.tee, "raw": b64e(self.raw)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Evidence:
        """Inverse of :meth:`to_json`; raises AttestationError on anything malformed."""
        raw = data.get("raw")
        if not isinstance(raw, str):
            raise AttestationError('evidence JSON needs a base64 string field "raw"')
        try:
            decoded = b64d(raw)
        except CryptoError as exc:
            raise AttestationError('evidence field "raw" is not valid base64') from exc
        return cls(tee=check_tee(data.get("tee")), raw=decoded)


@dataclass(frozen=True)
class Claims:
    """What a verifier established about evidence, the same shape for every TEE.

    ``measurements`` holds lowercase hex (and decimal strings for SVNs): SGX ``mrenclave``,
    ``mrsigner``, ``isv_prod_id``, ``isv_svn``; TDX ``mr_td``, ``rtmr0``..``rtmr3``,
    ``mr_seam``; SEV-SNP and sim ``measurement``. ``platform_flags`` are the PCK
    certificate's ``dynamic_platform``/``cached_keys``/``smt_enabled`` where defined.
    certificate's ``dynamic_platform``/``cached_keys``/``smt_enabled`` where defined; for
    SEV-SNP the report's PLATFORM_INFO (``smt_enabled``, ``tsme_enabled``, ``ecc_enabled``,
    ``rapl_disabled``, ``ciphertext_hiding_enabled``, ``alias_check_complete``).
    ``guest_policy`` is the SEV-SNP guest POLICY (``smt_allowed``, ``migrate_ma``,
    ``debug``, ``single_socket``, ``cxl_allowed``, ``mem_aes_256_xts``, ``rapl_disabled``,
    ``ciphertext_hiding``, ``page_swap_disabled``); ``reported_tcb`` the SEV-SNP
    REPORTED_TCB security patch levels (``bootloader``, ``tee``, ``snp``, ``microcode``);
    ``vmpl`` the VMPL that requested the report. All three are empty/None for other TEEs.
    ``collateral_valid_from``/``_until`` bound the instant the evidence was verified at.
    ``details`` carries informative extras (FMSPC, QE status, reported TCB, ...).
    """

    tee: TeeType
    measurements: Mapping[str, str]
    report_data: bytes
    tcb_status: str
    advisory_ids: tuple[str, ...]
    debug: bool
    simulated: bool
    collateral_valid_from: datetime
    collateral_valid_until: datetime
    platform_flags: Mapping[str, bool] = field(default_factory=dict)
    details: Mapping[str, str] = field(default_factory=dict)
    guest_policy: Mapping[str, bool] = field(default_factory=dict)
    reported_tcb: Mapping[str, int] = field(default_factory=dict)
    vmpl: int | None = None

    def __post_init__(self) -> None:
        check_tee(self.tee)
        if len(self.report_data) != REPORT_DATA_SIZE:
            raise AttestationError(
                f"report_data must be {REPORT_DATA_SIZE} bytes, got {len(self.report_data)}"
            )
        if PRIMARY_MEASUREMENT[self.tee] not in self.measurements:
            raise AttestationError(f"{self.tee} claims lack their primary measurement")
        # Freeze the mappings too, so accepted Claims cannot be edited afterwards.
        object.__setattr__(self, "measurements", MappingProxyType(dict(self.measurements)))
        object.__setattr__(self, "platform_flags", MappingProxyType(dict(self.platform_flags)))
        object.__setattr__(self, "details", MappingProxyType(dict(self.details)))
        object.__setattr__(self, "guest_policy", MappingProxyType(dict(self.guest_policy)))
        object.__setattr__(self, "reported_tcb", MappingProxyType(dict(self.reported_tcb)))

    @property
    def measurement(self) -> str:
        """The primary measurement: MRENCLAVE, MRTD, the SNP launch digest or the sim hash."""
        return self.measurements[PRIMARY_MEASUREMENT[self.tee]]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (report_data as hex, times as ISO 8601)."""
        return {
            "tee": self.tee,
            "simulated": self.simulated,
            "measurement": self.measurement,
            "measurements": dict(self.measurements),
            "report_data": self.report_data.hex(),
            "tcb_status": self.tcb_status,
            "advisory_ids": list(self.advisory_ids),
            "debug": self.debug,
            "platform_flags": dict(self.platform_flags),
            "collateral_valid_from": self.collateral_valid_from.isoformat(),
            "collateral_valid_until": self.collateral_valid_until.isoformat(),
            "details": dict(self.details),
            "guest_policy": dict(self.guest_policy),
            "reported_tcb": dict(self.reported_tcb),
            "vmpl": self.vmpl,
        }


def require_aware(now: datetime) -> datetime:
    """Reject naive datetimes: a verification instant without a time zone is ambiguous."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise AttestationError(
            "the verification time must be timezone-aware (e.g. datetime.now(UTC))",
            code="config",
        )
    return now
