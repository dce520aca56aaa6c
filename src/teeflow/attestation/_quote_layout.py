"""The byte layout of an Intel DCAP quote (versions 3, 4 and 5), read from its length fields.

dcap-qvl decodes a quote from the front and ignores whatever follows it, so a quote with
bytes appended would verify as if they were part of the evidence. This module computes
the exact length of the one quote at the start of ``raw`` so the caller can refuse the
rest. Layouts, per the Intel SGX/TDX DCAP Quoting Library API (Appendix A):

- v3 (SGX) and v4 (SGX/TDX): header (48) | report body (SGX 384, TDX 584) |
  signature data length (u32 LE) | signature data;
- v5: header (48) | body type (u16 LE) | body size (u32 LE) | body | signature data
  length (u32 LE) | signature data. Body type 1 is an SGX enclave report (384), 2 a
  TDX 1.0 TD report (584), 3 a TDX 1.5 TD report (648: TDX 1.0 plus TEE_TCB_SVN2 and
  MRSERVICETD).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from teeflow.attestation._errors import AttestationError

__all__ = ["QuoteLayout", "check_single_quote", "quote_layout", "strip_quote_padding"]

HEADER_SIZE = 48
TEE_SGX, TEE_TDX = 0x00, 0x81
SGX_REPORT_SIZE, TD10_REPORT_SIZE, TD15_REPORT_SIZE = 384, 584, 648
# v5 body type -> (tee type, body size); v3/v4 have no body type, we report the equivalent.
V5_BODIES = {1: (TEE_SGX, SGX_REPORT_SIZE), 2: (TEE_TDX, TD10_REPORT_SIZE),
             3: (TEE_TDX, TD15_REPORT_SIZE)}  # fmt: skip
_QE_REPORT_AND_SIG = 384 + 64
_QE_REPORT_CERT_TYPE = 6
BODY_NAMES = {1: "SGX enclave report", 2: "TDX 1.0 TD report", 3: "TDX 1.5 TD report"}


@dataclass(frozen=True)
class QuoteLayout:
    """Where the parts of one quote lie: ``length`` bytes in all, body at ``body_offset``."""

    version: int
    tee_type: int
    body_type: int
    body_offset: int
    body_size: int
    length: int


def _u32(raw: bytes, offset: int, what: str) -> int:
    if len(raw) < offset + 4:
        raise _truncated(raw, f"its {what}")
    value: int = struct.unpack_from("<I", raw, offset)[0]
    return value


def _truncated(raw: bytes, what: str) -> AttestationError:
    return AttestationError(
        f"DCAP quote is truncated ({len(raw)} bytes end before {what}); send the whole "
        "quote the quoting enclave produced",
        code="evidence",
    )


def quote_layout(raw: bytes) -> QuoteLayout:
    """Read the layout of the quote at the start of ``raw`` (which may be longer).

    Raises AttestationError (code ``evidence``) for an unknown version, TEE or body type,
    a body size that does not match its type, or a quote that ends early.
    """
    if len(raw) < HEADER_SIZE:
        raise _truncated(raw, "the end of the 48-byte header")
    version, _key_type, tee_type = struct.unpack_from("<HHI", raw, 0)
    if tee_type not in (TEE_SGX, TEE_TDX):
        raise AttestationError(
            f"not an SGX or TDX DCAP quote (header tee_type {tee_type:#x})", code="evidence"
        )
    if version in (3, 4):
        if version == 3 and tee_type != TEE_SGX:
            raise AttestationError("DCAP quote v3 must be an SGX quote", code="evidence")
        body_type = 1 if tee_type == TEE_SGX else 2
        body_offset = HEADER_SIZE
        body_size = V5_BODIES[body_type][1]
    elif version == 5:
        if len(raw) < HEADER_SIZE + 6:
            raise _truncated(raw, "the v5 body type and size")
        body_type, body_size = struct.unpack_from("<HI", raw, HEADER_SIZE)
        expected = V5_BODIES.get(body_type)
        if expected is None:
            raise AttestationError(
                f"unsupported DCAP quote v5 body type {body_type} (supported: "
                + ", ".join(f"{t} = {n}" for t, n in BODY_NAMES.items())
                + ")",
                code="evidence",
            )
        if expected != (tee_type, body_size):
            raise AttestationError(
                f"DCAP quote v5 body type {body_type} ({BODY_NAMES[body_type]}) needs tee_type "
                f"{expected[0]:#x} and {expected[1]} bytes, the quote says {tee_type:#x} and "
                f"{body_size}",
                code="evidence",
            )
        body_offset = HEADER_SIZE + 6
    else:
        raise AttestationError(
            f"unsupported DCAP quote version {version} (supported: 3, 4, 5)", code="evidence"
        )
    sig_offset = body_offset + body_size
    sig_size = _u32(raw, sig_offset, "its signature data length")
    length = sig_offset + 4 + sig_size
    if len(raw) < length:
        raise _truncated(raw, f"the {length} bytes its length fields give")
    inner = _signature_data_size(raw, sig_offset + 4, version)
    if inner != sig_size:
        raise AttestationError(
            f"DCAP quote signature data length {sig_size} disagrees with its contents "
            f"({inner} bytes); the quote is malformed",
            code="evidence",
        )
    return QuoteLayout(version, tee_type, body_type, body_offset, body_size, length)


def _cert_data_end(raw: bytes, offset: int) -> int:
    # Certification data: type (u16) | size (u32) | data.
    return offset + 6 + _u32(raw, offset + 2, "its certification data size")


def _qe_report_data_end(raw: bytes, offset: int) -> int:
    # QE report (384) | QE report signature (64) | QE auth data size (u16) | auth data |
    # certification data (the PCK chain).
    auth = offset + _QE_REPORT_AND_SIG
    if len(raw) < auth + 2:
        raise _truncated(raw, "its QE authentication data size")
    auth_size: int = struct.unpack_from("<H", raw, auth)[0]
    return _cert_data_end(raw, auth + 2 + auth_size)


def _signature_data_size(raw: bytes, start: int, version: int) -> int:
    """Bytes the signature data at ``start`` really spans, from its inner length fields."""
    after_key = start + 128  # ECDSA signature (64) | attestation public key (64)
    if version == 3:
        end = _qe_report_data_end(raw, after_key)
    else:
        # v4/v5: certification data of type 6 wraps the QE report certification data.
        end = _cert_data_end(raw, after_key)
        cert_type: int = struct.unpack_from("<H", raw, after_key)[0]
        if cert_type == _QE_REPORT_CERT_TYPE and _qe_report_data_end(raw, after_key + 6) != end:
            raise AttestationError(
                "DCAP quote QE report certification data length disagrees with its "
                "contents; the quote is malformed",
                code="evidence",
            )
    return end - start


def _trailing(raw: bytes, layout: QuoteLayout) -> AttestationError:
    return AttestationError(
        f"DCAP evidence holds {len(raw) - layout.length} byte(s) after the signed quote "
        f"(the quote is {layout.length} bytes, the evidence {len(raw)}); evidence must be "
        f"exactly one quote - send only its first {layout.length} bytes, without padding",
        code="evidence",
    )


def check_single_quote(raw: bytes) -> QuoteLayout:
    """The layout of ``raw``, which must be exactly one quote with nothing after it."""
    layout = quote_layout(raw)
    if len(raw) != layout.length:
        raise _trailing(raw, layout)
    return layout


def strip_quote_padding(raw: bytes) -> bytes:
    """``raw`` without the zero bytes some quote producers pad it with (for a TEE's own
    quote, before it is sent); any other trailing byte raises AttestationError."""
    layout = quote_layout(raw)
    if raw[layout.length :].strip(b"\0"):
        raise _trailing(raw, layout)
    return raw[: layout.length]
