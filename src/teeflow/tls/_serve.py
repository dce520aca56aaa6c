"""The serving side: uvicorn's TLS settings, and no plain http on a non-loopback address."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import TypedDict

from teeflow.tls._client import InsecureTransportError, is_loopback

__all__ = ["UvicornTls", "add_serve_arguments", "serve_tls_options"]


class UvicornTls(TypedDict, total=False):
    """The keyword arguments of ``uvicorn.run`` that turn TLS on."""

    ssl_certfile: str
    ssl_keyfile: str


log = logging.getLogger("teeflow.tls")


def serve_tls_options(
    host: str,
    *,
    cert: Path | None,
    key: Path | None,
    insecure_http: bool = False,
    what: str = "the control plane",
) -> UvicornTls:
    """``uvicorn.run`` keyword arguments serving TLS with ``cert``/``key`` (PEM files), or {}
    for plain http.

    Plain http on ``host`` other than loopback (``0.0.0.0`` included) is refused with
    :class:`InsecureTransportError` unless ``insecure_http`` (e.g. behind a proxy that
    terminates TLS on the same private network), which logs a warning. Raises it also when
    only one of ``cert``/``key`` is given or either is not a readable file.
    """
    if (cert is None) != (key is None):
        raise InsecureTransportError("give both --tls-cert and --tls-key (PEM files), or neither")
    if cert is not None and key is not None:
        for path in (cert, key):
            if not path.is_file():
                raise InsecureTransportError(f"TLS file {path} does not exist or is not a file")
        return UvicornTls(ssl_certfile=str(cert), ssl_keyfile=str(key))
    if is_loopback(host):
        return UvicornTls()
    if not insecure_http:
        raise InsecureTransportError(
            f"refusing to serve {what} over plain http on {host}: tokens and secrets would "
            f"cross the network in clear. Give --tls-cert and --tls-key (teeflow tls init "
            f"makes a private CA), listen on 127.0.0.1 behind a TLS proxy, or pass "
            f"--insecure-http"
        )
    log.warning("INSECURE: serving %s over plain http on %s", what, host)
    return UvicornTls()


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tls-cert``, ``--tls-key`` and ``--insecure-http`` for a server's command line."""
    parser.add_argument("--tls-cert", type=Path, default=None, help="server certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, default=None, help="its private key (PEM)")
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        help="allow plain http on a non-loopback address (credentials travel in clear)",
    )
