"""``teeflow function list | show | upload``: built-in and uploaded functions.

Uploaded code is sealed by default: only an attested enclave reads it, and the contract binds
its SHA-256, so every party signs the exact code that runs even when it cannot read it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from teeflow.cli._escape import safe
from teeflow.cli._output import emit, fail, warn
from teeflow.cli._session import JsonOut, PassphraseFile, emit_rows, flat, session
from teeflow.functions.outputs import KINDS

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
def show(
    name: Annotated[str, typer.Argument(help="A built-in's name (see `teeflow function list`).")],
    as_json: JsonOut = False,
) -> None:
    """Print built-in NAME's arguments (type, range, default, meaning) and inputs (kind,
    formats, required columns), from the declaration that propose and the enclave check."""
    from teeflow.functions.declarations import describe_signature
    from teeflow.functions.docgen import render_builtin
    from teeflow.functions.registry import get_builtin

    try:
        builtin = get_builtin(name)
    except KeyError as exc:
        fail(str(exc.args[0]))
    if as_json:
        emit({"name": name, **describe_signature(builtin.signature)}, as_json=True, title=name)
        return
    for line in render_builtin(builtin).splitlines():
        typer.echo(safe(line))


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
        list[str] | None,
        typer.Option(
            "--output",
            help="An output it writes, SLOT:KIND[:MAX_BYTES] with KIND metrics, table, model or "
            "bytes (repeat). Members see it; the enclave refuses an output that breaks it.",
        ),
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
    declared = _declarations(outputs or [])
    if plain:
        warn("--plain: the platform operator and every participant of a task using it can read it")
    with session(passphrase_file) as client:
        record = client.upload_function(
            source,
            name=name,
            sealed=not plain,
            description=description,
            inputs=list(inputs or []),
            outputs=declared,
        )
    emit(record if as_json else flat(record), as_json=as_json, title="Function uploaded")


def _declarations(items: list[str]) -> dict[str, dict[str, Any]]:
    """``SLOT:KIND[:MAX_BYTES]`` options -> ``{slot: {"kind", "max_bytes"}}``."""
    declared: dict[str, dict[str, Any]] = {}
    for item in items:
        slot, _, rest = item.partition(":")
        kind, _, limit = rest.partition(":")
        if not slot or kind not in KINDS or (limit and not limit.isdigit()):
            fail(f"--output expects SLOT:KIND[:MAX_BYTES] with KIND one of {', '.join(KINDS)}")
        declared[slot] = {"kind": kind, "max_bytes": int(limit) if limit else None}
    return declared


@app.command()
def source(
    task_id: Annotated[str, typer.Argument(help="A task that uses the function.", metavar="ID")],
    passphrase_file: PassphraseFile = None,
) -> None:
    """Print the plain source of the uploaded function a task runs, checked against the hash
    its contract pins (a sealed function's code stays confidential to its owner)."""
    with session(passphrase_file) as client:
        code = client.function_source(task_id)
    for line in code.splitlines():
        typer.echo(safe(line))
