"""The private CA and server certificate (teeflow.tls.make_private_ca) and the server side's
TLS settings (teeflow.tls.serve_tls_options)."""

from __future__ import annotations

import ipaddress
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from teeflow.tls import InsecureTransportError, make_private_ca, serve_tls_options

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _verify(ca: Path, cert: Path, name: x509.DNSName | x509.IPAddress, at: datetime) -> None:
    store = Store(x509.load_pem_x509_certificates(ca.read_bytes()))
    verifier = PolicyBuilder().store(store).time(at).build_server_verifier(name)
    verifier.verify(x509.load_pem_x509_certificate(cert.read_bytes()), [])


def test_server_certificate_chains_to_the_ca_for_each_host(tmp_path: Path) -> None:
    files = make_private_ca(tmp_path / "ca", hosts=["cp.example", "10.1.2.3"], now=NOW)

    _verify(files.ca_cert, files.cert, x509.DNSName("cp.example"), NOW)
    _verify(files.ca_cert, files.cert, x509.IPAddress(ipaddress.ip_address("10.1.2.3")), NOW)


@pytest.mark.parametrize(
    ("name", "at"),
    [
        (x509.DNSName("other.example"), NOW),
        (x509.IPAddress(ipaddress.ip_address("10.1.2.4")), NOW),
        (x509.DNSName("cp.example"), NOW + timedelta(days=31)),
    ],
)
def test_server_certificate_is_refused_for_another_host_or_after_it_expires(
    tmp_path: Path, name: x509.DNSName | x509.IPAddress, at: datetime
) -> None:
    files = make_private_ca(tmp_path / "ca", hosts=["cp.example", "10.1.2.3"], days=30, now=NOW)

    with pytest.raises(VerificationError):
        _verify(files.ca_cert, files.cert, name, at)


def test_another_ca_does_not_vouch_for_the_server(tmp_path: Path) -> None:
    ours = make_private_ca(tmp_path / "ours", hosts=["cp.example"], now=NOW)
    theirs = make_private_ca(tmp_path / "theirs", hosts=["cp.example"], now=NOW)

    with pytest.raises(VerificationError):
        _verify(theirs.ca_cert, ours.cert, x509.DNSName("cp.example"), NOW)


def test_keys_are_private_and_nothing_is_overwritten(tmp_path: Path) -> None:
    files = make_private_ca(tmp_path / "ca", hosts=["cp.example"])

    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert files.ca_key is not None and stat.S_IMODE(files.ca_key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "ca").stat().st_mode) == 0o700
    before = files.key.read_bytes()
    with pytest.raises(FileExistsError, match="choose an empty directory"):
        make_private_ca(tmp_path / "ca", hosts=["cp.example"])
    assert files.key.read_bytes() == before


def test_a_certificate_needs_a_host() -> None:
    with pytest.raises(ValueError, match="at least one host"):
        make_private_ca(Path("unused"), hosts=[])


def test_serving_off_loopback_needs_tls_or_an_explicit_opt_in(tmp_path: Path) -> None:
    files = make_private_ca(tmp_path / "ca", hosts=["cp.example"])

    with pytest.raises(InsecureTransportError, match="refusing to serve"):
        serve_tls_options("0.0.0.0", cert=None, key=None)
    assert serve_tls_options("0.0.0.0", cert=None, key=None, insecure_http=True) == {}
    assert serve_tls_options("127.0.0.1", cert=None, key=None) == {}
    assert serve_tls_options("0.0.0.0", cert=files.cert, key=files.key) == {
        "ssl_certfile": str(files.cert),
        "ssl_keyfile": str(files.key),
    }


def test_serving_tls_needs_both_files(tmp_path: Path) -> None:
    files = make_private_ca(tmp_path / "ca", hosts=["cp.example"])

    with pytest.raises(InsecureTransportError, match="both --tls-cert and --tls-key"):
        serve_tls_options("127.0.0.1", cert=files.cert, key=None)
    with pytest.raises(InsecureTransportError, match="does not exist"):
        serve_tls_options("127.0.0.1", cert=files.cert, key=tmp_path / "missing.pem")
