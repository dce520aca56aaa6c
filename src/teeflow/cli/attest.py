"""teeflow attest ... (placeholder until its owner fills it in)."""

import typer

app = typer.Typer(help="attest commands", no_args_is_help=True)
