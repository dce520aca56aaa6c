"""``teeflow function list | upload``: built-in and uploaded functions.

Uploaded code is sealed by default: only an attested enclave reads it, and the contract binds
its SHA-256, so every party signs the exact code that runs even when it cannot read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from teeflow.cli._output import emit, fail, warn
from teeflow.cli._session import JsonOut, PassphraseFile, emit_rows, flat, session

__all__ = ["app"]

app = typer.Typer(help="Functions a task can run.", no_args_is_help=True)

COLUMNS = ("name", "kind", "owner", "sealed", "id", "summary")  # hashes: --json, task show


@app.command("list")
def list_(passphrase_file: PassphraseFile = None, as_json: JsonOut = False) -> None:
    """List the built-in functions and the uploaded ones."""
    with session(passphrase_file) as client:
        rows = client.functions()
    emit_rows(rows, COLUMNS, as_json=as_json, title="Functions")


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(help="Python source defining run(ctx).", dir_okay=False)],
    name: Annotated[str, typer.Option("--name", help="Name shown to other members.")],
    plain: Annotated[
        bool, typer.Option("--plain", help="Upload readable code (default: sealed, confidential).")
    ] = False,
    inputs: Annotated[
        list[str] | None, typer.Option("--input", help="An input slot the function reads (repeat).")
    ] = None,
    outputs: Annotated[
        list[str] | None, typer.Option("--output", help="An output slot it writes (repeat).")
    ] = None,
    description: Annotated[str, typer.Option("--description", help="Free text.")] = "",
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Upload FILE as a function; its code is sealed unless --plain."""
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {file}: {exc}")
    if plain:
        warn("--plain: the platform operator and every member can read this code")
    with session(passphrase_file) as client:
        record = client.upload_function(
            source,
            name=name,
            sealed=not plain,
            description=description,
            inputs=list(inputs or []),
            outputs=list(outputs or []),
        )
    emit(record if as_json else flat(record), as_json=as_json, title="Function uploaded")
