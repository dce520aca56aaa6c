"""HTTP fetches of collateral (Intel PCCS/PCS for DCAP, AMD KDS for VCEKs) with a given TLS rule.

dcap-qvl's own ``get_collateral`` dials with its bundled client, which takes no CA and no
transport rule, so teeflow asks the PCCS itself with httpx and assembles the same
``QuoteCollateralV3`` JSON (docs/key-release.md, "Collateral sources"). Every request here uses
the ``verify`` the caller computed with ``teeflow.tls.client_verify`` (attestation/ is trusted
code and does not import the transport layer): https checked against the configured CA, plain
http only to loopback or with the explicit insecure opt-in. The caller decides; this module only
never dials without it.

PCCS / Intel PCS API v4 (``<base>/{sgx,tdx}/certification/v4/...``):

- ``pckcrl?ca=processor|platform&encoding=der``: the PCK CRL, header ``SGX-PCK-CRL-Issuer-Chain``
- ``rootcacrl`` (PCCS only): the Intel SGX Root CA CRL, hex or DER
- ``tcb?fmspc=<FMSPC>``: ``{"tcbInfo": ..., "signature": hex}``, header ``TCB-Info-Issuer-Chain``
  (``SGX-TCB-Info-Issuer-Chain`` on older servers)
- ``qe/identity``: ``{"enclaveIdentity": ..., "signature": hex}``, header
  ``SGX-Enclave-Identity-Issuer-Chain``

The signed JSON values are kept as the exact bytes served (Intel signs those bytes).
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Callable
from urllib.parse import unquote

import dcap_qvl
import httpx

from teeflow.attestation._errors import AttestationError

__all__ = ["TlsVerify", "fetch_dcap_collateral", "http_get"]

TlsVerify = ssl.SSLContext | bool
"""httpx's ``verify=``: what ``teeflow.tls.client_verify`` returns for the URL."""

_TIMEOUT = 30.0


def http_get(base_url: str, *, verify: TlsVerify, what: str) -> Callable[[str], httpx.Response]:
    """GET ``base_url + path`` with ``verify``; AttestationError (code ``collateral``) on a
    transport error or an HTTP status >= 400, naming ``what`` and the URL (no body echoed)."""
    base = base_url.rstrip("/")

    def get(path: str) -> httpx.Response:
        url = base + path
        try:
            response = httpx.get(url, timeout=_TIMEOUT, verify=verify)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise AttestationError(
                f"cannot fetch {what} from {url} ({type(exc).__name__}: {exc}); check the URL, "
                "the CA certificate (--ca-cert) and the network, or put the files in a "
                "collateral directory",
                code="collateral",
            ) from exc
        return response

    return get


def _header(response: httpx.Response, *names: str) -> str:
    for name in names:
        value = response.headers.get(name)
        if value:
            return unquote(value)
    raise AttestationError(
        f"the PCCS response lacks the {names[0]} header; is this a PCCS/PCS v4 URL?",
        code="collateral",
    )


def _signed_part(body: str, key: str) -> tuple[str, str]:
    """(exact text of ``body[key]``, hex signature) of a TCB info / QE identity response."""
    try:
        document = json.loads(body)
        signature = str(document["signature"])
        bytes.fromhex(signature)
        found = re.search(rf'"{key}"\s*:\s*', body)
        if found is None:
            raise KeyError(key)
        start = found.end()
        _value, end = json.JSONDecoder().raw_decode(body, start)
    except (ValueError, KeyError, TypeError) as exc:
        raise AttestationError(
            f"the PCCS answered a {key} response that is not the signed JSON it should be",
            code="collateral",
        ) from exc
    return body[start:end], signature


def _crl_hex(response: httpx.Response) -> str:
    """A CRL body as hex DER, whether served as DER, hex or PEM."""
    content = response.content
    text = content.decode("ascii", errors="replace").strip()
    if text.startswith("-----BEGIN X509 CRL-----"):
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding

        return x509.load_pem_x509_crl(content).public_bytes(Encoding.DER).hex()
    try:
        bytes.fromhex(text)
        return text.lower()
    except ValueError:
        return content.hex()


def fetch_dcap_collateral(pccs_url: str, raw_quote: bytes, *, verify: TlsVerify) -> str:
    """dcap-qvl ``QuoteCollateralV3`` JSON for ``raw_quote`` (SGX or TDX, PCK chain embedded)
    from the PCCS or Intel PCS at ``pccs_url`` (its base, e.g. ``https://pccs:8081``).

    Raises AttestationError (code ``collateral``) if the quote cannot be parsed, a request fails
    or a response is not what the PCCS API returns.
    """
    try:
        quote = dcap_qvl.parse_quote(raw_quote)
        tee, fmspc, ca = ("tdx" if quote.is_tdx() else "sgx"), quote.fmspc(), quote.ca()
    except ValueError as exc:
        raise AttestationError("cannot parse the DCAP quote to find its FMSPC") from exc
    sgx = http_get(f"{pccs_url.rstrip('/')}/sgx/certification/v4", verify=verify, what="PCCS")
    own = http_get(f"{pccs_url.rstrip('/')}/{tee}/certification/v4", verify=verify, what="PCCS")
    pck = sgx(f"/pckcrl?ca={ca}&encoding=der")
    tcb = own(f"/tcb?fmspc={fmspc}")
    qe = own("/qe/identity")
    tcb_info, tcb_signature = _signed_part(tcb.text, "tcbInfo")
    qe_identity, qe_signature = _signed_part(qe.text, "enclaveIdentity")
    collateral = {
        "pck_crl_issuer_chain": _header(pck, "SGX-PCK-CRL-Issuer-Chain"),
        "root_ca_crl": _crl_hex(sgx("/rootcacrl")),
        "pck_crl": _crl_hex(pck),
        "tcb_info_issuer_chain": _header(tcb, "TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"),
        "tcb_info": tcb_info,
        "tcb_info_signature": tcb_signature,
        "qe_identity_issuer_chain": _header(qe, "SGX-Enclave-Identity-Issuer-Chain"),
        "qe_identity": qe_identity,
        "qe_identity_signature": qe_signature,
    }
    return json.dumps(collateral)
