"""teeflow enclave ... (placeholder until its owner fills it in)."""

import typer

app = typer.Typer(help="enclave commands", no_args_is_help=True)
