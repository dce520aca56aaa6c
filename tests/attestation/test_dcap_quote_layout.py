"""Evidence must be exactly one DCAP quote: lengths come from the quote's own length fields."""

from __future__ import annotations

import struct
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from teeflow.attestation import AttestationError, Evidence, load_dcap_collateral, verify_evidence
from teeflow.attestation._quote_layout import quote_layout, strip_quote_padding

VERIFIED = ["sgx_phala_v3", "tdx_phala_v4"]


def _case(expected: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in expected["dcap_cases"] if c["case"] == name)


def _quote(testdata: Path, case: dict[str, Any]) -> bytes:
    raw = (testdata / case["quote"]).read_bytes()
    return raw[: quote_layout(raw).length]


def _verify(testdata: Path, case: dict[str, Any], raw: bytes) -> object:
    return verify_evidence(
        Evidence(tee=case["tee"].lower(), raw=raw),
        now=datetime.fromisoformat(case["now"]).astimezone(UTC),
        collateral=load_dcap_collateral(testdata / case["collateral"]),
    )


@pytest.mark.parametrize("name", VERIFIED)
@pytest.mark.parametrize("tail", [b"\x00", b"\x00" * 70, b"appended by the operator"])
def test_bytes_after_a_real_quote_are_refused(testdata, expected, name, tail):
    case = _case(expected, name)
    quote = _quote(testdata, case)
    _verify(testdata, case, quote)  # the exact quote verifies

    with pytest.raises(AttestationError, match="after the signed quote") as info:
        _verify(testdata, case, quote + tail)

    assert info.value.code == "evidence"
    assert f"first {len(quote)} bytes" in str(info.value)


@pytest.mark.parametrize(
    ("name", "extra"),
    # Phala's sample is zero-padded; go-tdx-guest's carries "extra bytes(only for testing
    # purpose)" after the quote. Both verified as-is before.
    [("tdx_phala_v4", 70), ("tdx_gotdx_SPR_E4_v4", 39)],
)
def test_real_samples_with_trailing_bytes_are_refused_as_they_are(testdata, expected, name, extra):
    case = _case(expected, name)
    raw = (testdata / case["quote"]).read_bytes()

    with pytest.raises(AttestationError, match=f"holds {extra} byte"):
        _verify(testdata, case, raw)


@pytest.mark.parametrize("name", VERIFIED)
def test_signature_data_length_that_covers_appended_bytes_is_refused(testdata, expected, name):
    case = _case(expected, name)
    quote = bytearray(_quote(testdata, case))
    at = 48 + (384 if case["tee"] == "SGX" else 584)
    (size,) = struct.unpack_from("<I", quote, at)
    struct.pack_into("<I", quote, at, size + 16)

    with pytest.raises(AttestationError, match="signature data length") as info:
        _verify(testdata, case, bytes(quote) + bytes(16))

    assert info.value.code == "evidence"


@pytest.mark.parametrize("name", VERIFIED)
@pytest.mark.parametrize("cut", [1, 100, 4000])
def test_truncated_real_quote_is_refused(testdata, expected, name, cut):
    case = _case(expected, name)
    quote = _quote(testdata, case)

    with pytest.raises(AttestationError, match="truncated"):
        _verify(testdata, case, quote[:-cut])


def test_strip_quote_padding_drops_zeros_only(testdata, expected):
    raw = (testdata / _case(expected, "tdx_phala_v4")["quote"]).read_bytes()
    gotdx = (testdata / _case(expected, "tdx_gotdx_SPR_E4_v4")["quote"]).read_bytes()

    assert strip_quote_padding(raw) == raw[:4936]
    with pytest.raises(AttestationError, match="after the signed quote"):
        strip_quote_padding(gotdx)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (struct.pack("<HHI", 6, 2, 0x81), "unsupported DCAP quote version 6"),
        (struct.pack("<HHI", 4, 2, 0x42), "tee_type 0x42"),
        (struct.pack("<HHI", 3, 2, 0x81), "v3 must be an SGX quote"),
    ],
)
def test_unknown_header_is_refused_with_its_reason(header, message):
    with pytest.raises(AttestationError, match=message):
        quote_layout(header + bytes(2000))


@pytest.mark.parametrize(
    ("body_type", "size", "message"),
    [(7, 584, "unsupported DCAP quote v5 body type 7"), (3, 584, "needs tee_type 0x81 and 648")],
)
def test_v5_body_type_and_size_must_agree(body_type, size, message):
    raw = struct.pack("<HHI", 5, 2, 0x81) + bytes(40) + struct.pack("<HI", body_type, size)

    with pytest.raises(AttestationError, match=message):
        quote_layout(raw + bytes(2000))


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=1200), version=st.sampled_from([3, 4, 5]))
def test_layout_of_any_bytes_is_a_length_or_an_attestation_error(raw, version):
    data = struct.pack("<H", version) + raw
    try:
        layout = quote_layout(data)
    except AttestationError:
        return
    assert layout.length <= len(data)
