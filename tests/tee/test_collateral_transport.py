"""The key service's collateral fetches (PCCS for DCAP, AMD KDS for VCEKs) follow teeflow.tls's
client rule: https verified against the configured CA, plain http only to loopback or with the
explicit opt-in. A local stand-in PCCS serves the real SGX collateral of ../shared over HTTPS
with a private CA, in the PCCS API's own shapes (headers, DER CRL, signed JSON bodies)."""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

from teeflow.attestation import (
    AttestationError,
    Evidence,
    FetchingCollateral,
    hardware_verifier,
    kds_fetch,
    pccs_fetch,
)
from teeflow.keyservice.__main__ import collateral_source, parser
from teeflow.tls import InsecureTransportError, TlsFiles, make_private_ca

from .conftest import EXECUTOR_POLICY

TESTDATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "testdata" / "attestation"
SGX_QUOTE = TESTDATA / "sgx" / "phala_sgx_quote_v3.bin"
SGX_COLLATERAL = TESTDATA / "sgx" / "phala_sgx_quote_v3.collateral.json"
NOW = datetime(2025, 7, 1, tzinfo=UTC)  # inside the collateral's window (README.md)


def _pccs_routes() -> dict[str, tuple[bytes, dict[str, str]]]:
    """What a PCCS answers for the SGX quote's platform (FMSPC 00A067110000, processor CA)."""
    c = json.loads(SGX_COLLATERAL.read_text())
    tcb = '{"tcbInfo":' + c["tcb_info"] + ',"signature":"' + c["tcb_info_signature"] + '"}'
    qe = (
        '{"enclaveIdentity": ' + c["qe_identity"] + ', "signature": "'
        + c["qe_identity_signature"] + '"}'
    )  # fmt: skip
    base = "/sgx/certification/v4"
    return {
        f"{base}/pckcrl?ca=processor&encoding=der": (
            bytes.fromhex(c["pck_crl"]),
            {"SGX-PCK-CRL-Issuer-Chain": quote(c["pck_crl_issuer_chain"])},
        ),
        f"{base}/rootcacrl": (c["root_ca_crl"].encode(), {}),
        f"{base}/tcb?fmspc=00A067110000": (
            tcb.encode(),
            {"TCB-Info-Issuer-Chain": quote(c["tcb_info_issuer_chain"])},
        ),
        f"{base}/qe/identity": (
            qe.encode(),
            {"SGX-Enclave-Identity-Issuer-Chain": quote(c["qe_identity_issuer_chain"])},
        ),
    }


class _Pccs(BaseHTTPRequestHandler):
    routes: dict[str, tuple[bytes, dict[str, str]]] = {}
    asked: list[str] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        body, headers = self.routes.get(self.path, (b"not found", {}))
        self.send_response(200 if self.path in self.routes else 404)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_private_ca(tmp_path_factory.mktemp("pccs-ca") / "ca", hosts=["127.0.0.1"])


@pytest.fixture
def pccs(tls: TlsFiles) -> Iterator[str]:
    """A stand-in PCCS on https://127.0.0.1:<port> with a certificate from the private CA."""
    handler = type("Pccs", (_Pccs,), {"routes": _pccs_routes(), "asked": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert, tls.key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _args(tmp_path: Path, *extra: str) -> Any:
    base = ["--data-dir", str(tmp_path), "--policy", "p", "--signers", "s"]
    return parser().parse_args([*base, *extra])


def test_collateral_from_an_https_pccs_verified_with_the_ca_setting(
    pccs: str, tls: TlsFiles, tmp_path: Path
) -> None:
    """The key service, given --pccs-url and --ca-cert, fetches the quote's collateral from the
    PCCS over verified TLS; the real quote then verifies with it (status as dcap-qvl gives)."""
    source = collateral_source(_args(tmp_path, "--pccs-url", pccs, "--ca-cert", str(tls.ca_cert)))
    assert isinstance(source, FetchingCollateral)
    claims = hardware_verifier(source)(Evidence("sgx", SGX_QUOTE.read_bytes()), NOW)
    assert claims.tcb_status == "ConfigurationAndSWHardeningNeeded"
    assert (tmp_path / "collateral-cache" / "dcap").is_dir()


def test_an_https_pccs_whose_certificate_the_ca_setting_does_not_cover_is_refused(
    pccs: str, tmp_path: Path
) -> None:
    """Without the private CA (system roots only) the TLS handshake fails: no collateral is
    taken from a server that could not prove who it is."""
    source = collateral_source(_args(tmp_path, "--pccs-url", pccs))
    assert source is not None
    with pytest.raises(AttestationError, match="cannot fetch PCCS") as caught:
        source.collateral_for(Evidence("sgx", SGX_QUOTE.read_bytes()), now=NOW)
    assert caught.value.code == "collateral"


@pytest.mark.parametrize(
    "flag,url",
    [("--pccs-url", "http://pccs.lan:8081"), ("--amd-kds-url", "http://10.0.0.7:8080")],
)
def test_plain_http_collateral_to_another_host_is_refused(
    flag: str, url: str, tmp_path: Path
) -> None:
    extra = [flag, url] if flag == "--pccs-url" else ["--pccs-url", "https://p:8081", flag, url]
    with pytest.raises(
        InsecureTransportError, match=f"refusing plain http to {urlsplit(url).hostname}"
    ):
        collateral_source(_args(tmp_path, *extra))


def test_plain_http_collateral_needs_the_explicit_opt_in(tmp_path: Path) -> None:
    insecure = _args(tmp_path, "--pccs-url", "http://pccs.lan:8081", "--collateral-insecure-http")
    assert isinstance(collateral_source(insecure), FetchingCollateral)
    loopback = _args(tmp_path, "--pccs-url", "http://127.0.0.1:8081")
    assert isinstance(collateral_source(loopback), FetchingCollateral)


def test_the_key_service_refuses_to_start_with_a_plain_http_pccs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from teeflow.keyservice import __main__ as keyservice_main

    def started(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the key service started serving with a plain-http PCCS")

    monkeypatch.setattr(keyservice_main.uvicorn, "run", started)

    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(EXECUTOR_POLICY.to_dict()))
    (tmp_path / "signers").write_text("")
    args = parser().parse_args(
        ["--data-dir", str(tmp_path / "d"), "--policy", str(policy), "--signers",
         str(tmp_path / "signers"), "--pccs-url", "http://pccs.lan:8081"]
    )  # fmt: skip
    with pytest.raises(SystemExit, match=r"refusing plain http to pccs\.lan"):
        keyservice_main.serve(args)


def test_kds_fetch_uses_the_verify_it_is_given(pccs: str, tls: TlsFiles) -> None:
    """The KDS fetch dials with the TLS setting it was made with: the private CA opens the
    stand-in (404 for a path it does not serve), the system roots do not."""
    with pytest.raises(AttestationError, match="HTTPStatusError"):
        kds_fetch(pccs, verify=ssl.create_default_context(cafile=str(tls.ca_cert)))("/vcek/x")
    with pytest.raises(AttestationError, match="ConnectError"):
        kds_fetch(pccs, verify=ssl.create_default_context())("/vcek/x")
    fetch = pccs_fetch(pccs, verify=ssl.create_default_context(cafile=str(tls.ca_cert)))
    assert json.loads(fetch(SGX_QUOTE.read_bytes()))["tcb_info"].startswith('{"id":"SGX"')
