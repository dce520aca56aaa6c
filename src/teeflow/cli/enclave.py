"""``teeflow enclave``: build artefacts for running the executor inside a TEE."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from teeflow.attestation import (
    MEASURED,
    render_gramine_manifest,
    render_occlum_config,
    render_scone_config,
)
from teeflow.cli import allow_list

app = typer.Typer(help="Enclave build helpers.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Enclave build helpers."""


@app.command("manifest")
def manifest_command(
    tee: Annotated[str, typer.Option(help="TEE to target (only sgx needs a manifest)")] = "sgx",
    libos: Annotated[str, typer.Option(help="gramine, occlum or scone")] = "gramine",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
    enclave_size: Annotated[
        str | None, typer.Option(help=f"sgx.enclave_size (measured: {MEASURED.enclave_size})")
    ] = None,
    max_threads: Annotated[
        int | None, typer.Option(help=f"sgx.max_threads (measured: {MEASURED.max_threads})")
    ] = None,
    edmm: Annotated[bool, typer.Option(help="sgx.edmm_enable (SGX2 hardware)")] = False,
    server_url: Annotated[
        str, typer.Option(help="control plane URL baked into the executor's argv")
    ] = "https://control-plane.example:8000",
    key_service_policy: Annotated[
        str, typer.Option(help="path of the key-service policy (a trusted file)")
    ] = "/teeflow/kbs-policy.json",
    ca_cert: Annotated[
        str,
        typer.Option(help="path of the CA the control plane's certificate chains to (trusted)"),
    ] = "/teeflow/ca.pem",
) -> None:
    """Render the LibOS configuration that runs the executor in an SGX enclave."""
    if tee != "sgx":
        typer.echo(
            f"no manifest for --tee {tee}: tdx and sev-snp run the executor in a confidential "
            "VM (docs/tee-hosts.md); only sgx uses a LibOS",
            err=True,
        )
        raise typer.Exit(2)
    if libos == "gramine":
        text = render_gramine_manifest(
            enclave_size=enclave_size,
            max_threads=max_threads,
            edmm=edmm,
            server_url=server_url,
            key_service_policy=key_service_policy,
            ca_cert=ca_cert,
        )
    elif libos == "occlum":
        text = render_occlum_config()
    elif libos == "scone":
        text = render_scone_config()
    else:
        typer.echo(f"unknown --libos {libos!r}; use gramine, occlum or scone", err=True)
        raise typer.Exit(2)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")


app.add_typer(allow_list.app, name="allow-list")
