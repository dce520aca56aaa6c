"""Output helpers shared by every ``teeflow`` command.

Results go to stdout, as JSON (``--json``, for scripts) or as a Rich table (for people).
Errors, warnings and progress go to stderr, so a script's stdout stays clean::

    emit({"fingerprint": fp}, as_json=json_out, title="Member keys")
    fail("no keys in ~/.teeflow; run `teeflow keys init`")        # exits 1, one line
    with progress(total, label="sealing", enabled=not json_out) as advance:
        advance(len(chunk))
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table
from rich.text import Text

from teeflow.cli._escape import safe

__all__ = ["PROGRESS_THRESHOLD", "cell", "emit", "fail", "joined", "progress", "warn"]

PROGRESS_THRESHOLD = 4 << 20
"""Inputs smaller than this (bytes) get no progress bar: it would only flicker."""


def _one_line(message: str) -> str:
    # Escape first: a newline or ESC in a server's message becomes visible text, not a new line.
    return " ".join(safe(message).split())


def emit(data: Mapping[str, object], *, as_json: bool, title: str) -> None:
    """Print a command's result to stdout: ``data`` as a JSON object, or a two-column table."""
    if as_json:
        typer.echo(json.dumps(dict(data), indent=2, default=str))
        return
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")  # fold, never cut: values get copied
    for name, value in data.items():
        table.add_row(Text(safe(name.replace("_", " "))), Text(cell(value)))
    Console(highlight=False, soft_wrap=False).print(table)


def joined(value: object) -> str:
    """A value as one string, not yet escaped: lists joined by commas, mappings as ``k=v``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)


def cell(value: object) -> str:
    """One table cell: :func:`joined`, escaped (cli/_escape.py) as it is about to be printed."""
    return safe(joined(value))


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``error: message`` as one line to stderr and exit with ``code`` (non-zero)."""
    typer.echo(f"error: {_one_line(message)}", err=True)
    raise typer.Exit(code if code else 1)


def warn(message: str) -> None:
    """Print ``warning: message`` as one line to stderr."""
    typer.echo(f"warning: {_one_line(message)}", err=True)


@contextmanager
def progress(total: int, *, label: str, enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """A byte-progress bar on stderr; yields ``advance(n_bytes)``.

    Shown only when ``enabled``, stderr is a terminal and ``total`` is at least
    :data:`PROGRESS_THRESHOLD`; otherwise ``advance`` does nothing.
    """
    if not (enabled and total >= PROGRESS_THRESHOLD and sys.stderr.isatty()):
        yield lambda _n: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
