"""``teeflow enclave``: build artefacts for running the executor inside a TEE."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from teeflow.attestation import render_gramine_manifest

app = typer.Typer(help="Enclave build helpers.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Enclave build helpers."""


@app.command("manifest")
def manifest_command(
    tee: Annotated[str, typer.Option(help="TEE to target (only sgx needs a manifest)")] = "sgx",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
    enclave_size: Annotated[str, typer.Option(help="sgx.enclave_size")] = "8G",
    max_threads: Annotated[int, typer.Option(help="sgx.max_threads")] = 64,
) -> None:
    """Render the Gramine manifest template for the executor."""
    if tee != "sgx":
        typer.echo(f"no manifest for --tee {tee}: only sgx (Gramine) uses one", err=True)
        raise typer.Exit(2)
    text = render_gramine_manifest(enclave_size=enclave_size, max_threads=max_threads)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}")
