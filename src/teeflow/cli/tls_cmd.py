"""``teeflow tls init``: a private CA and a server certificate for HTTPS between hosts.

Give ``ca.pem`` to every member (``teeflow account login --ca-cert``) and executor host
(``--ca-cert`` / TEEFLOW_CA_CERT); start the control plane (and the key service) with
``--tls-cert server.pem --tls-key server-key.pem``. Keep ``ca-key.pem`` offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from teeflow.cli._output import emit, fail
from teeflow.cli._session import JsonOut
from teeflow.tls import make_private_ca

__all__ = ["app"]

app = typer.Typer(help="TLS certificates for a private deployment.", no_args_is_help=True)


@app.command()
def init(
    out: Annotated[
        Path, typer.Option("--out", help="Empty directory for the PEM files.", file_okay=False)
    ],
    hosts: Annotated[
        list[str],
        typer.Option(
            "--host",
            help="A DNS name or IP address clients use for the server (repeat for each).",
        ),
    ],
    days: Annotated[int, typer.Option("--days", min=1, help="Validity in days.")] = 825,
    as_json: JsonOut = False,
) -> None:
    """Make a self-signed CA and a server certificate for --host names (ECDSA P-256)."""
    try:
        files = make_private_ca(out, hosts=hosts, days=days)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    result = {
        "ca_cert": str(files.ca_cert),
        "ca_key": str(files.ca_key),
        "tls_cert": str(files.cert),
        "tls_key": str(files.key),
        "hosts": ", ".join(hosts),
    }
    emit(result, as_json=as_json, title="Private CA and server certificate")
    if not as_json:
        typer.echo(
            f"serve with --tls-cert {files.cert} --tls-key {files.key}; clients take "
            f"--ca-cert {files.ca_cert}; keep {files.ca_key} offline",
            err=True,
        )
