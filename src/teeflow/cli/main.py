"""The ``teeflow`` command: a thin front end over client/ and server/."""

from __future__ import annotations

import typer

from teeflow.cli import attest, enclave, files, keys

app = typer.Typer(
    name="teeflow",
    help="Confidential deep learning: data usable but invisible.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(keys.app, name="keys")
app.add_typer(attest.app, name="attest")
app.add_typer(enclave.app, name="enclave")
files.register(app)

if __name__ == "__main__":
    app()
