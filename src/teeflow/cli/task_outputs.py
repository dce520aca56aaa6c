"""``teeflow task outputs TASK``: a task's outputs and the datasets they became.

One row per output slot: its declared kind, who may read it, whether it is jointly owned (and by
whom), and the dataset id it produced: a joint output's dataset (usable only as the input of a
later task all its owners approve), or the datasets you kept of an output addressed to you
(``teeflow dataset from-output``).
"""

from __future__ import annotations

from typing import Annotated

import typer

from teeflow.cli._session import JsonOut, PassphraseFile, emit_rows, session

__all__ = ["register"]

COLUMNS = ("slot", "kind", "recipients", "joint", "owners", "dataset_id")


def outputs(
    task_id: Annotated[str, typer.Argument(help="The task id.", metavar="ID")],
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """List the task's outputs: slot, kind, recipients, joint or not, dataset id."""
    from teeflow.console._view import output_kind

    with session(passphrase_file) as client:
        task = client.task(task_id)
        functions = client.functions()
        rows = [
            {**row, "kind": output_kind(task, row["slot"], functions) or "unknown"}
            for row in client.output_table(task_id)
        ]
    emit_rows(rows, COLUMNS, as_json=as_json, title=f"Outputs of task {task_id}")


def register(app: typer.Typer) -> None:
    app.command("outputs")(outputs)
