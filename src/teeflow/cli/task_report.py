"""``teeflow task report TASK``: the task's metrics as pictures, without the console.

The metrics outputs addressed to this member are downloaded, checked against the enclave's
receipt and decrypted here (``Client.output``), then drawn (console/plots.py): ROC and KS
curves, confusion matrix, per-class recall, feature importance, and the training curve from the
progress events the enclave encrypted to this member.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from teeflow.cli._output import fail
from teeflow.cli._session import PassphraseFile, session

__all__ = ["register"]


def report(
    task_id: Annotated[str, typer.Argument(help="The task id.", metavar="ID")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write one self-contained HTML file (embedded SVG).", dir_okay=False
        ),
    ] = None,
    png_dir: Annotated[
        Path | None,
        typer.Option("--png-dir", help="Write one PNG per picture here.", file_okay=False),
    ] = None,
    passphrase_file: PassphraseFile = None,
) -> None:
    """Draw the task's metrics (ROC, KS, confusion matrix ...) as HTML or PNG files."""
    from teeflow.console._view import my_outputs, output_kind
    from teeflow.console.report import report_html, write_pngs

    if out is None and png_dir is None:
        fail("say where: --out report.html and/or --png-dir DIR")
    metrics: dict[str, dict[str, Any]] = {}
    with session(passphrase_file) as client:
        task = client.task(task_id)
        if task["status"] != "succeeded":
            fail(f"task {task_id} is {task['status']}: a report needs a succeeded task")
        functions = client.functions()
        for slot in my_outputs(task, client.username or ""):
            if output_kind(task, slot, functions) != "metrics":
                continue
            data = client.output(task_id, slot)
            assert isinstance(data, bytes)  # no destination: bytes
            try:
                document = json.loads(data)
            except ValueError:
                continue
            if isinstance(document, dict):
                metrics[slot] = document
        events = client.events(task_id)
    if not metrics and not events:
        fail("no metrics output is addressed to you and no progress was disclosed to you")
    if out is not None:
        out.write_text(report_html(task, metrics, events), encoding="utf-8")
        typer.echo(f"wrote {out}")
    if png_dir is not None:
        for path in write_pngs(png_dir, metrics, events):
            typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    app.command("report")(report)
