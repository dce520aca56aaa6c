"""The client side: which URLs may be dialled, and the TLS context that verifies the server."""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "CA_CERT_ENV",
    "INSECURE_HTTP_ENV",
    "InsecureTransportError",
    "client_verify",
    "env_ca_cert",
    "env_insecure_http",
    "is_loopback",
]

log = logging.getLogger("teeflow.tls")

CA_CERT_ENV = "TEEFLOW_CA_CERT"
"""A PEM file of the CA(s) that signed the server's certificate (a private deployment's CA)."""
INSECURE_HTTP_ENV = "TEEFLOW_INSECURE_HTTP"
"""``1`` allows plain http to a host other than this machine (credentials travel in clear)."""


class InsecureTransportError(ValueError):
    """A URL would carry credentials in clear, or its TLS trust anchor cannot be loaded.

    The message says what to do (use https and give the CA, or opt in to plain http).
    """


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an IP literal, IPv6 with or without brackets) is this
    machine's loopback: ``localhost``, ``*.localhost`` (RFC 6761), 127.0.0.0/8 or ::1."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def client_verify(
    url: str, *, ca_cert: Path | None = None, insecure_http: bool = False
) -> ssl.SSLContext | bool:
    """httpx's ``verify=`` for requests to ``url``.

    - ``https``: a context (TLS 1.2 or later, host name checked) that trusts ``ca_cert`` alone
      when given, else the system's roots.
    - ``http`` to a loopback host: ``True`` (no TLS is used; nothing leaves the machine).
    - ``http`` to any other host: refused with :class:`InsecureTransportError`, unless
      ``insecure_http``, which logs a warning and returns ``True``.

    Raises :class:`InsecureTransportError` also for another scheme, a URL without a host, or a
    ``ca_cert`` that cannot be read as PEM certificates.
    """
    parts = urlsplit(url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in ("http", "https") or not host:
        raise InsecureTransportError(
            f"{url!r} is not an http(s) URL with a host; give e.g. https://control-plane:8321"
        )
    if scheme == "https":
        return _context(ca_cert)
    if is_loopback(host):
        return True
    if not insecure_http:
        raise InsecureTransportError(
            f"refusing plain http to {host}: passwords, tokens and the executor secret would "
            f"cross the network in clear. Serve TLS (teeflow tls init; --tls-cert/--tls-key) "
            f"and use https:// with --ca-cert or {CA_CERT_ENV}, or pass --insecure-http "
            f"({INSECURE_HTTP_ENV}=1) if the network itself is private"
        )
    log.warning(
        "INSECURE: plain http to %s; credentials and metadata travel in clear (data stays "
        "HPKE-sealed end to end)",
        host,
    )
    return True


def _context(ca_cert: Path | None) -> ssl.SSLContext:
    try:
        if ca_cert is None:
            context = ssl.create_default_context()
        else:
            context = ssl.create_default_context(cafile=str(ca_cert))
    except (OSError, ssl.SSLError) as exc:
        raise InsecureTransportError(
            f"cannot load the CA certificate {ca_cert}: {exc.strerror or exc}; give the PEM "
            f"file of the CA that signed the server's certificate (teeflow tls init writes ca.pem)"
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def env_ca_cert(environ: Mapping[str, str] | None = None) -> Path | None:
    """``TEEFLOW_CA_CERT`` as a path, or None when unset or empty."""
    value = (os.environ if environ is None else environ).get(CA_CERT_ENV, "")
    return Path(value) if value else None


def env_insecure_http(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``TEEFLOW_INSECURE_HTTP`` is ``1``/``true``/``yes``."""
    value = (os.environ if environ is None else environ).get(INSECURE_HTTP_ENV, "")
    return value.strip().lower() in ("1", "true", "yes")
