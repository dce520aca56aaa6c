"""The fields of an AMD SEV-SNP ATTESTATION_REPORT, decoded (no verification here).

Offsets and bit positions follow the SEV-SNP Firmware ABI specification (AMD 56860):
"ATTESTATION_REPORT Structure", "GUEST_POLICY", "PLATFORM_INFO" and "TCB_VERSION".
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from teeflow.attestation._errors import AttestationError

__all__ = ["REPORT_SIZE", "SIGNED_END", "TCB_FIELDS", "SnpReport", "parse_report"]

REPORT_SIZE: Final = 0x4A0
SIGNED_END: Final = 0x2A0  # the signature covers bytes 0x0..0x29F

# GUEST_POLICY bits (bits 0-15 are the minimum ABI version; bit 17 is reserved, must be 1).
_GUEST_POLICY = MappingProxyType(
    {
        "smt_allowed": 16,
        "migrate_ma": 18,
        "debug": 19,
        "single_socket": 20,
        "cxl_allowed": 21,
        "mem_aes_256_xts": 22,
        "rapl_disabled": 23,
        "ciphertext_hiding": 24,
        "page_swap_disabled": 25,
    }
)
# PLATFORM_INFO bits.
_PLATFORM_INFO = MappingProxyType(
    {
        "smt_enabled": 0,
        "tsme_enabled": 1,
        "ecc_enabled": 2,
        "rapl_disabled": 3,
        "ciphertext_hiding_enabled": 4,
        "alias_check_complete": 5,
    }
)
# TCB_VERSION byte index of each security patch level, Milan and Genoa (Zen 3/4) layout.
# Turin (Zen 5) differs (FMC 0, BOOT_LOADER 1, TEE 2, SNP 3, MICROCODE 7) and is refused
# before this table is used: its VCEK hwID and ARK differ too.
TCB_FIELDS = MappingProxyType({"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7})
# CPUID family of each product (reports of version 3 and later carry it at 0x188).
_FAMILIES = {0x19: "Milan/Genoa (Zen 3/4)", 0x1A: "Turin (Zen 5)"}


@dataclass(frozen=True)
class SnpReport:
    """The decoded fields teeflow uses; byte strings are raw, integers as stored (LE)."""

    version: int
    guest_svn: int
    policy: int
    vmpl: int
    signature_algo: int
    platform_info: int
    report_data: bytes
    measurement: bytes
    host_data: bytes
    reported_tcb: bytes
    chip_id: bytes
    cpuid_family: int | None
    current_tcb: bytes
    committed_tcb: bytes
    launch_tcb: bytes

    @property
    def guest_policy(self) -> dict[str, bool]:
        return {name: bool(self.policy >> bit & 1) for name, bit in _GUEST_POLICY.items()}

    @property
    def platform_flags(self) -> dict[str, bool]:
        return {n: bool(self.platform_info >> bit & 1) for n, bit in _PLATFORM_INFO.items()}

    @property
    def tcb_levels(self) -> dict[str, int]:
        return {name: self.reported_tcb[index] for name, index in TCB_FIELDS.items()}

    @property
    def product(self) -> str | None:
        """The product family named by CPUID_FAM_ID (report v3+), or None if not given."""
        if self.cpuid_family is None:
            return None
        return _FAMILIES.get(self.cpuid_family, f"CPU family {self.cpuid_family:#x}")


def parse_report(raw: bytes) -> SnpReport:
    """Decode ``raw`` (exactly 1184 bytes); raise AttestationError if it cannot be one."""
    if len(raw) != REPORT_SIZE:
        raise AttestationError(
            f"SEV-SNP report must be {REPORT_SIZE} bytes, got {len(raw)}", code="evidence"
        )
    version, guest_svn, policy = struct.unpack_from("<IIQ", raw, 0x00)
    vmpl, sig_algo = struct.unpack_from("<II", raw, 0x30)
    (platform_info,) = struct.unpack_from("<Q", raw, 0x40)
    if version < 2 or sig_algo != 1:
        raise AttestationError(
            f"unsupported SEV-SNP report (version {version}, signature algorithm {sig_algo}); "
            "teeflow reads report versions 2 and later signed with ECDSA P-384",
            code="evidence",
        )
    return SnpReport(
        version=version,
        guest_svn=guest_svn,
        policy=policy,
        vmpl=vmpl,
        signature_algo=sig_algo,
        platform_info=platform_info,
        report_data=raw[0x50:0x90],
        measurement=raw[0x90:0xC0],
        host_data=raw[0xC0:0xE0],
        reported_tcb=raw[0x180:0x188],
        chip_id=raw[0x1A0:0x1E0],
        cpuid_family=raw[0x188] if version >= 3 else None,
        current_tcb=raw[0x38:0x40],
        committed_tcb=raw[0x1E0:0x1E8],
        launch_tcb=raw[0x1F0:0x1F8],
    )
