"""teeflow seal / unseal (placeholder until its owner fills it in)."""

import typer


def register(app: typer.Typer) -> None:
    """Add the top-level ``seal`` and ``unseal`` commands to ``app``."""
