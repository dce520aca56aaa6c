"""teeflow keys ... (placeholder until its owner fills it in)."""

import typer

app = typer.Typer(help="keys commands", no_args_is_help=True)
