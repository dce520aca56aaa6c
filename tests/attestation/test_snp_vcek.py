"""The VCEK hwID is the raw CHIP_ID, and products other than Milan get a clear error.

A test ARK -> ASK -> VCEK chain is generated here (the pinned ARK is swapped for the test
one with ``monkeypatch``); the report is the real Milan sample with its CHIP_ID replaced
and re-signed by the test VCEK, so the VCEK parsing path runs on chip ids of our choice.
"""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import teeflow.attestation._snp as snp
from teeflow.attestation import AttestationError, Evidence, SnpCollateral, verify_evidence

NOW = datetime(2026, 3, 1, tzinfo=UTC)
AMD = "1.3.6.1.4.1.3704.1."
SPL = {"3.1": "bootloader", "3.2": "tee", "3.3": "snp", "3.8": "microcode"}
TCB = {"bootloader": 0, "tee": 1, "snp": 6, "microcode": 7}  # REPORTED_TCB byte index


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ext(suffix: str, value: bytes) -> x509.UnrecognizedExtension:
    return x509.UnrecognizedExtension(x509.ObjectIdentifier(AMD + suffix), value)


def _cert(cn: str, key: Any, issuer: str, signer: Any, exts: list[Any]) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
    )
    for ext in exts:
        builder = builder.add_extension(ext, critical=False)
    return builder.sign(signer, hashes.SHA384())


class Chip:
    """A test AMD chain whose VCEK is issued for ``hwid`` and the sample's reported TCB."""

    def __init__(self, sample: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sample = sample
        self.ark_key = ec.generate_private_key(ec.SECP384R1())
        self.ask_key = ec.generate_private_key(ec.SECP384R1())
        self.vcek_key = ec.generate_private_key(ec.SECP384R1())
        self.ark = _cert("ARK-Test", self.ark_key, "ARK-Test", self.ark_key, [])
        self.ask = _cert("SEV-Test", self.ask_key, "ARK-Test", self.ark_key, [])
        spki = self.ark.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        monkeypatch.setattr(snp, "AMD_ARK_SPKI_SHA256", {"Test": hashlib.sha256(spki).hexdigest()})

    def collateral(self, hwid: bytes, product: str = "Milan-B0") -> SnpCollateral:
        tcb = self.sample[0x180:0x188]
        exts = [_ext("2", b"\x16" + bytes([len(product)]) + product.encode()), _ext("4", hwid)]
        exts += [_ext(s, bytes([0x02, 0x01, tcb[TCB[n]]])) for s, n in SPL.items()]
        vcek = _cert("SEV-VCEK", self.vcek_key, "SEV-Test", self.ask_key, exts)
        return SnpCollateral(vcek=vcek, ask=self.ask, ark=self.ark)

    def report(self, chip_id: bytes, *, version: int = 2, family: int = 0) -> Evidence:
        raw = bytearray(self.sample)
        raw[0x1A0:0x1E0] = chip_id
        struct.pack_into("<I", raw, 0, version)
        raw[0x188] = family
        r, s = decode_dss_signature(
            self.vcek_key.sign(bytes(raw[:0x2A0]), ec.ECDSA(hashes.SHA384()))
        )
        raw[0x2A0:0x2E8] = r.to_bytes(72, "little")
        raw[0x2E8:0x330] = s.to_bytes(72, "little")
        return Evidence(tee="sev-snp", raw=bytes(raw))


@pytest.fixture
def chip(testdata: Path, expected: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Chip:
    return Chip((testdata / expected["snp_cases"][0]["report"]).read_bytes(), monkeypatch)


def test_real_vcek_hwid_is_the_raw_chip_id(testdata, expected):
    case = expected["snp_cases"][0]
    vcek = SnpCollateral.from_files(
        vcek=testdata / case["vcek"], chain=testdata / case["ask_ark"]
    ).vcek  # loads AMD's non-positive serial number without the deprecation warning

    hwid = vcek.extensions.get_extension_for_oid(x509.ObjectIdentifier(AMD + "4")).value

    assert isinstance(hwid, x509.UnrecognizedExtension)
    assert hwid.value == bytes.fromhex(case["chip_id"])  # 64 raw bytes, no DER wrapper


@pytest.mark.parametrize(
    "prefix",
    # Chip ids whose first bytes read as a DER header covering the rest (OCTET STRING,
    # INTEGER, SEQUENCE, IA5String of 62 bytes), and an ordinary one.
    [b"\x04\x3e", b"\x02\x3e", b"\x30\x3e", b"\x16\x3e", b"\x5a\x5a"],
)
def test_genuine_vcek_verifies_whatever_its_chip_id_begins_with(chip, prefix):
    chip_id = prefix + hashlib.sha512(prefix).digest()[:62]

    claims = verify_evidence(chip.report(chip_id), now=NOW, collateral=chip.collateral(chip_id))

    assert claims.details["chip_id"] == chip_id.hex()


@pytest.mark.parametrize(
    "hwid",
    [
        lambda c: b"\x04\x40" + c,  # DER-wrapped: not how AMD encodes hwID
        lambda c: c[:63],
        lambda c: c + b"\x00",
        lambda c: bytes([c[0] ^ 1]) + c[1:],
    ],
)
def test_vcek_whose_hwid_is_not_exactly_the_chip_id_is_refused(chip, hwid):
    chip_id = hashlib.sha512(b"chip").digest()

    with pytest.raises(AttestationError, match="hwID does not match") as info:
        verify_evidence(chip.report(chip_id), now=NOW, collateral=chip.collateral(hwid(chip_id)))

    assert info.value.code == "chain"


def test_turin_report_gets_an_unsupported_product_error(chip):
    chip_id = hashlib.sha512(b"turin").digest()

    with pytest.raises(AttestationError, match="unsupported SEV-SNP product Turin") as info:
        verify_evidence(
            chip.report(chip_id, version=3, family=0x1A),
            now=NOW,
            collateral=chip.collateral(chip_id),
        )

    assert "Milan" in str(info.value)


@pytest.mark.parametrize("product", ["Turin-B0", "Genoa-B1"])
def test_vcek_of_another_product_gets_an_unsupported_product_error(chip, product):
    chip_id = hashlib.sha512(b"other").digest()

    with pytest.raises(AttestationError, match=f"unsupported SEV-SNP product {product}"):
        verify_evidence(chip.report(chip_id), now=NOW, collateral=chip.collateral(chip_id, product))


def test_milan_report_v3_with_its_cpuid_family_verifies(chip):
    chip_id = hashlib.sha512(b"v3").digest()

    claims = verify_evidence(
        chip.report(chip_id, version=3, family=0x19), now=NOW, collateral=chip.collateral(chip_id)
    )

    assert claims.details["report_version"] == "3"


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(spl=st.binary(max_size=6), hwid=st.binary(max_size=70))
def test_any_vcek_extension_bytes_verify_or_raise_attestation_error(chip, spl, hwid):
    chip_id = hashlib.sha512(b"fuzz").digest()
    good = chip.collateral(chip_id)
    exts = [e.value for e in good.vcek.extensions if e.oid.dotted_string != AMD + "3.3"]
    exts = [_ext("4", hwid) if e.oid.dotted_string == AMD + "4" else e for e in exts]
    vcek = _cert("SEV-VCEK", chip.vcek_key, "SEV-Test", chip.ask_key, [*exts, _ext("3.3", spl)])

    try:
        verify_evidence(
            chip.report(chip_id),
            now=NOW,
            collateral=SnpCollateral(vcek=vcek, ask=good.ask, ark=good.ark),
        )
    except AttestationError:
        return
    assert hwid == chip_id and spl == bytes([0x02, 0x01, chip.sample[0x186]])
