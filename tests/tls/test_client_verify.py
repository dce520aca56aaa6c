"""Which URLs clients may dial, and what they verify (teeflow.tls.client_verify)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest

from teeflow.tls import (
    InsecureTransportError,
    client_verify,
    env_ca_cert,
    env_insecure_http,
    is_loopback,
    make_private_ca,
)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST.", True),
        ("api.localhost", True),
        ("10.0.0.1", False),
        ("0.0.0.0", False),
        ("192.0.2.7", False),
        ("localhost.example.com", False),
        ("cp.example", False),
        ("::ffff:10.0.0.1", False),
    ],
)
def test_loopback_is_only_this_machine(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    "url", ["http://10.1.2.3:8321", "http://cp.example", "http://0.0.0.0:8321", "http://[fd00::1]"]
)
def test_plain_http_to_another_host_is_refused_with_what_to_do(url: str) -> None:
    with pytest.raises(InsecureTransportError) as caught:
        client_verify(url)

    message = str(caught.value)
    assert "refusing plain http" in message
    assert "https://" in message and "--insecure-http" in message


def test_plain_http_to_another_host_is_allowed_only_when_asked_and_then_warned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="teeflow.tls"):
        verify = client_verify("http://10.1.2.3:8321", insecure_http=True)

    assert verify is True
    assert any(
        "INSECURE" in r.getMessage() and "10.1.2.3" in r.getMessage() for r in caplog.records
    )


@pytest.mark.parametrize("url", ["http://127.0.0.1:8321", "http://localhost:1", "http://[::1]:80"])
def test_plain_http_on_loopback_needs_no_tls(url: str) -> None:
    assert client_verify(url) is True


def test_https_verifies_against_the_given_ca_and_the_host_name(tmp_path: Path) -> None:
    files = make_private_ca(tmp_path / "ca", hosts=["cp.example"])

    context = client_verify("https://cp.example:8321", ca_cert=files.ca_cert)

    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert len(context.get_ca_certs()) == 1  # the private CA alone, not the system's roots


def test_https_without_a_ca_uses_the_system_roots() -> None:
    context = client_verify("https://cp.example")

    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_an_unreadable_ca_file_is_refused_with_what_to_give(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "ca.pem"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(InsecureTransportError, match="cannot load the CA certificate"):
        client_verify("https://cp.example", ca_cert=path)


@pytest.mark.parametrize("url", ["ftp://cp.example", "cp.example:8321", "https://", "file:///x"])
def test_a_url_that_is_not_http_with_a_host_is_refused(url: str) -> None:
    with pytest.raises(InsecureTransportError, match="not an http"):
        client_verify(url)


def test_environment_settings() -> None:
    assert env_ca_cert({"TEEFLOW_CA_CERT": "/etc/teeflow/ca.pem"}) == Path("/etc/teeflow/ca.pem")
    assert env_ca_cert({"TEEFLOW_CA_CERT": ""}) is None and env_ca_cert({}) is None
    assert env_insecure_http({"TEEFLOW_INSECURE_HTTP": "1"})
    assert not env_insecure_http({"TEEFLOW_INSECURE_HTTP": "0"}) and not env_insecure_http({})
