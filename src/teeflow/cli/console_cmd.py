"""``teeflow console``: the member's web console, served on this machine only.

The keyring is unlocked once (the passphrase asked once per launch), the console listens on
127.0.0.1, and the URL it prints carries a random per-launch token, as Jupyter's does.
"""

from __future__ import annotations

import webbrowser
from typing import Annotated

import typer

from teeflow.cli._output import fail
from teeflow.cli._session import PassphraseFile, session

__all__ = ["register"]


def console(
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (default: a free one)."),
    ] = 0,
    open_browser: Annotated[
        bool, typer.Option("--open/--no-open", help="Open the URL in your web browser.")
    ] = False,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Serve the member's web console on 127.0.0.1 until Ctrl-C."""
    from teeflow.console.server import ConsoleServer

    with session(passphrase_file) as client:
        try:
            server = ConsoleServer(client, port=port)
        except OSError as exc:
            fail(str(exc))
        typer.echo("teeflow console for " + (client.username or "?") + ", on this machine only.")
        typer.echo("Open this URL (it holds this launch's token; do not share it):")
        typer.echo(f"    {server.url}")
        typer.echo("Press Ctrl-C to stop.")
        if open_browser:
            webbrowser.open(server.url)
        server.run()


def register(app: typer.Typer) -> None:
    app.command("console")(console)
