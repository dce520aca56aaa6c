"""Collateral sources: what a verifier of hardware evidence needs besides the evidence.

A :class:`CollateralSource` answers "which collateral verifies this evidence": dcap-qvl
``QuoteCollateralV3`` for SGX/TDX quotes, :class:`SnpCollateral` (VCEK + AMD chain) for SEV-SNP
reports. Collateral is signed by Intel or AMD and checked again by the verifier, so a source needs
no integrity protection; it only decides where the bytes come from:

- :class:`DirectoryCollateral`: offline files (tests, air-gapped hosts), no network ever.
  Layout: ``dcap/<tee>-<FMSPC>-<ca>.json`` (the :class:`PccsCache` naming) and
  ``snp/vcek-<CHIP_ID hex>-<REPORTED_TCB hex>.der`` + ``snp/cert_chain.pem`` (ASK then ARK).
- :class:`FetchingCollateral`: a PCCS for DCAP (through :class:`PccsCache`) and AMD KDS for
  VCEKs, each cached in a directory, fetched under the caller's TLS rule (_pcs_client.py).
  Used on real hosts; in tests only against local stand-ins.

:func:`hardware_verifier` turns a source into a verifier (evidence, now) -> Claims.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from teeflow.attestation._errors import AttestationError
from teeflow.attestation._model import Claims, Evidence
from teeflow.attestation._pccs import CollateralFetch, PccsCache, collateral_file_name
from teeflow.attestation._pcs_client import TlsVerify, http_get
from teeflow.attestation._snp import SnpCollateral
from teeflow.attestation._snp_report import parse_report
from teeflow.attestation._verify import verify_evidence

__all__ = [
    "AMD_KDS_URL",
    "CollateralSource",
    "DirectoryCollateral",
    "FetchingCollateral",
    "hardware_verifier",
    "kds_fetch",
    "snp_vcek_name",
]

AMD_KDS_URL = "https://kdsintf.amd.com"
_CHAIN = "cert_chain.pem"


class CollateralSource(Protocol):
    def collateral_for(self, evidence: Evidence, *, now: datetime) -> object:
        """Collateral for ``evidence`` (sgx, tdx or sev-snp); AttestationError if none."""
        ...


def snp_vcek_name(raw_report: bytes) -> str:
    """``vcek-<CHIP_ID hex>-<REPORTED_TCB hex>.der``: the VCEK file for this report's chip/TCB."""
    report = parse_report(raw_report)
    return f"vcek-{report.chip_id.hex()}-{report.reported_tcb.hex()}.der"


class DirectoryCollateral:
    """Collateral read from files under ``root`` (layout in the module docstring)."""

    def __init__(self, root: Path) -> None:
        self._root = Path(root)

    def collateral_for(self, evidence: Evidence, *, now: datetime) -> object:
        from teeflow.attestation._dcap import load_dcap_collateral

        if evidence.tee in ("sgx", "tdx"):
            path = self._root / "dcap" / collateral_file_name(evidence.raw)
            if not path.is_file():
                raise AttestationError(
                    f"no DCAP collateral for this quote's platform: put its QuoteCollateralV3 "
                    f"JSON at {path}, or configure a PCCS URL",
                    code="collateral",
                )
            return load_dcap_collateral(path)
        if evidence.tee == "sev-snp":
            vcek = self._root / "snp" / snp_vcek_name(evidence.raw)
            if not vcek.is_file():
                raise AttestationError(
                    f"no VCEK for this report's chip and TCB: put AMD KDS's VCEK at {vcek}, "
                    "or configure the AMD KDS URL",
                    code="collateral",
                )
            return SnpCollateral.from_files(vcek=vcek, chain=self._root / "snp" / _CHAIN)
        raise AttestationError(f"{evidence.tee} evidence needs no collateral", code="config")


VcekFetch = Callable[[str], bytes]
"""GET a KDS path (``/vcek/v1/Milan/<chip>?...`` or ``/vcek/v1/Milan/cert_chain``) -> body."""


def kds_fetch(base_url: str = AMD_KDS_URL, *, verify: TlsVerify) -> VcekFetch:
    """GETs from AMD KDS at ``base_url`` under ``verify`` (``teeflow.tls.client_verify``'s
    answer for the URL); AttestationError (code ``collateral``) if a request fails."""
    get = http_get(base_url, verify=verify, what="SEV-SNP collateral (AMD KDS)")

    def fetch(path: str) -> bytes:
        return get(path).content

    return fetch


class FetchingCollateral:
    """DCAP collateral from ``dcap`` (:func:`pccs_fetch`) and VCEKs from ``kds``
    (:func:`kds_fetch`), cached under ``cache_dir``. Both fetches carry the TLS rule their
    maker was given; this class never dials on its own."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        dcap: CollateralFetch,
        kds: VcekFetch,
    ) -> None:
        self._dir = Path(cache_dir)
        self._dcap = PccsCache(self._dir / "dcap", fetch=dcap)
        self._kds = kds

    def collateral_for(self, evidence: Evidence, *, now: datetime) -> object:
        if evidence.tee in ("sgx", "tdx"):
            return self._dcap.get(evidence.raw, now=now)
        if evidence.tee != "sev-snp":
            raise AttestationError(f"{evidence.tee} evidence needs no collateral", code="config")
        report = parse_report(evidence.raw)
        snp = self._dir / "snp"
        snp.mkdir(parents=True, exist_ok=True)
        vcek, chain = snp / snp_vcek_name(evidence.raw), snp / _CHAIN
        if vcek.is_file() and chain.is_file():
            return SnpCollateral.from_files(vcek=vcek, chain=chain)
        levels = report.tcb_levels
        query = (f"?blSPL={levels['bootloader']}&teeSPL={levels['tee']}"
                 f"&snpSPL={levels['snp']}&ucodeSPL={levels['microcode']}")  # fmt: skip
        vcek_der = (
            vcek.read_bytes()
            if vcek.is_file()
            else self._kds(f"/vcek/v1/Milan/{report.chip_id.hex()}{query}")
        )
        chain_pem = (
            chain.read_bytes() if chain.is_file() else self._kds("/vcek/v1/Milan/cert_chain")
        )
        collateral = SnpCollateral.from_bytes(vcek=vcek_der, chain_pem=chain_pem)  # parse first
        for path, data in ((vcek, vcek_der), (chain, chain_pem)):
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return collateral


def hardware_verifier(
    source: CollateralSource | None, *, sim_quoting_keys: frozenset[str] = frozenset()
) -> Callable[[Evidence, datetime], Claims]:
    """A verifier (evidence, now) -> authentic Claims (no policy) for every TEE: sim against
    ``sim_quoting_keys``, hardware with collateral from ``source`` (refused if None)."""

    def verify(evidence: Evidence, now: datetime) -> Claims:
        collateral: Any = None
        if evidence.tee != "sim":
            if source is None:
                raise AttestationError(
                    f"no collateral source for {evidence.tee} evidence; configure a collateral "
                    "directory or a PCCS URL",
                    code="collateral",
                )
            collateral = source.collateral_for(evidence, now=now)
        return verify_evidence(
            evidence, now=now, collateral=collateral, sim_quoting_keys=sim_quoting_keys
        )

    return verify
