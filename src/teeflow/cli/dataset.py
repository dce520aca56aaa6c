"""``teeflow dataset upload | from-output | list | show | schema | delete | policy | budget``:
seal a file locally, upload only its ciphertext; keep a task's output as your own dataset; show a
dataset and its published schema; publish your schema summary; delete it; sign its policy; read
your own ledger of its privacy budget.

The data key stays in $TEEFLOW_HOME/datasets/ and leaves this machine only wrapped to an
enclave the member attested, when the member approves a task that uses the dataset.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from teeflow.cli._output import emit, fail
from teeflow.cli._session import JsonOut, PassphraseFile, emit_rows, session
from teeflow.client._schema_publish import schema_text

__all__ = ["app"]

app = typer.Typer(help="Your encrypted datasets.", no_args_is_help=True)

COLUMNS = ("id", "name", "kind", "owners", "state", "size", "ciphertext_sha256")


def with_owners(record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with ``owners``: every joint owner of a joint dataset, else its one owner."""
    owners = record.get("joint_owners") or [record.get("owner")]
    return {**record, "owners": ", ".join(str(o) for o in owners)}


class Kind(StrEnum):
    table = "table"
    images = "images"
    model = "model"
    other = "other"


@app.command()
def upload(
    file: Annotated[
        Path, typer.Argument(help="The plaintext file to seal and upload.", dir_okay=False)
    ],
    name: Annotated[str, typer.Option("--name", help="Name shown to other members.")],
    kind: Annotated[Kind, typer.Option("--kind", help="What the data is.")] = Kind.other,
    description: Annotated[str, typer.Option("--description", help="Free text.")] = "",
    rows: Annotated[
        int | None,
        typer.Option(
            "--rows", min=0, help="Publish the row count (shown in the review of tasks using it)."
        ),
    ] = None,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Seal FILE under a fresh data key here, and upload only the ciphertext."""
    if not file.is_file():
        fail(f"{file} is not a readable file")
    with session(passphrase_file) as client:
        record = client.upload_dataset(
            file, name=name, kind=kind.value, description=description, rows=rows
        )
    emit(record, as_json=as_json, title="Dataset uploaded (sealed)")


@app.command("from-output")
def from_output(
    task_id: Annotated[str, typer.Argument(help="The task that produced the output.")],
    slot: Annotated[str, typer.Argument(help="The output slot addressed to you (e.g. model).")],
    name: Annotated[str | None, typer.Option("--name", help="Name shown to other members.")] = None,
    kind: Annotated[
        Kind | None, typer.Option("--kind", help="What the data is (default: the output's kind).")
    ] = None,
    description: Annotated[str, typer.Option("--description", help="Free text.")] = "",
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Keep output SLOT of TASK_ID (addressed to you) as a dataset you own, for later tasks,
    without uploading it again: its key is unwrapped here and kept in your keyring."""
    from teeflow.console._view import output_kind

    with session(passphrase_file) as client:
        if kind is None:
            declared = output_kind(client.task(task_id), slot, client.functions())
            kind = Kind(declared) if declared in ("model", "table") else Kind.other
        record = client.keep_output(
            task_id, slot, name=name, kind=kind.value, description=description
        )
    how = "re-sealed and uploaded (padded output)" if record["resealed"] else "no re-upload"
    emit(with_owners(record), as_json=as_json, title=f"Output kept as your dataset ({how})")


@app.command()
def show(
    dataset_id: Annotated[str, typer.Argument(help="The dataset's id.")],
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Show one dataset: owners (all of them for a joint dataset), state, producing task, and
    its owner's published schema summary (signature checked against the owner's pinned key;
    refused if the control plane altered it)."""
    with session(passphrase_file) as client:
        record = client.dataset(dataset_id)
    if not as_json:
        record["schema"] = schema_text(record.get("schema"))
    emit(with_owners(record), as_json=as_json, title="Dataset")


@app.command("list")
def list_(
    owner: Annotated[str | None, typer.Option("--owner", help="Another member's datasets.")] = None,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """List your datasets, or another member's (metadata only)."""
    with session(passphrase_file) as client:
        rows = [with_owners(r) for r in client.datasets(owner=owner)]
    emit_rows(rows, COLUMNS, as_json=as_json, title="Datasets")


@app.command()
def schema(
    dataset_id: Annotated[str, typer.Argument(help="Your dataset's id.")],
    publish: Annotated[
        bool,
        typer.Option("--publish", help="Sign and publish the summary to your partners (opt-in)."),
    ] = False,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Print the schema summary your upload check recorded for DATASET_ID (column names and
    types, row count, class names); --publish signs it and shows it to partners. Nothing is
    published by default."""
    with session(passphrase_file) as client:
        if publish:
            summary = client.publish_schema(dataset_id)
        else:
            recorded = (client.home.dataset_record(dataset_id) or {}).get("schema")
            if not isinstance(recorded, dict):
                fail(f"no schema summary recorded here for dataset {dataset_id}")
            summary = recorded
    title = "Schema published (signed)" if publish else "Schema summary (not published)"
    emit(summary if as_json else {"schema": schema_text(summary)}, as_json=as_json, title=title)


@app.command()
def delete(
    dataset_id: Annotated[str, typer.Argument(help="The id of a dataset you own.")],
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Delete DATASET_ID's ciphertext from the platform (frees your storage quota); its record
    and audit entries stay. Refused while an unfinished task uses it."""
    with session(passphrase_file) as client:
        client.delete_dataset(dataset_id)
    emit({"id": dataset_id, "state": "deleted"}, as_json=as_json, title="Dataset deleted")


@app.command()
def policy(
    dataset_id: Annotated[str, typer.Argument(help="Your dataset's id.")],
    function: Annotated[
        list[str] | None,
        typer.Option(
            "--function",
            help="A built-in name or sha256:<code hash> that may read it (repeat; default: any).",
        ),
    ] = None,
    recipient: Annotated[
        list[str] | None,
        typer.Option(
            "--recipient",
            help="A member who may receive what is computed from it (repeat; default: anyone).",
        ),
    ] = None,
    min_rows: Annotated[
        int, typer.Option("--min-rows", min=0, help="Fewest rows behind a disclosed aggregate.")
    ] = 0,
    no_raw_rows: Annotated[
        bool, typer.Option("--no-raw-rows", help="Let no row-carrying output leave.")
    ] = False,
    dp_epsilon: Annotated[
        float | None, typer.Option("--dp-epsilon", min=0.0, help="Differential-privacy budget.")
    ] = None,
    dp_delta: Annotated[float, typer.Option("--dp-delta", min=0.0, max=0.5)] = 1e-5,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Sign a policy for DATASET_ID (docs/privacy.md); the enclave enforces it."""
    with session(passphrase_file) as client:
        signed = client.set_policy(
            dataset_id,
            functions=function or None,
            recipients=recipient or None,
            min_rows=min_rows,
            raw_rows=not no_raw_rows,
            dp=None if dp_epsilon is None else (dp_epsilon, dp_delta),
        )
    emit(signed["policy"], as_json=as_json, title="Dataset policy signed and attached")


@app.command()
def budget(
    dataset_id: Annotated[str, typer.Argument(help="Your dataset's id.")],
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """What your own ledger says is left of DATASET_ID's privacy budget, and every spend."""
    with session(passphrase_file) as client:
        epsilon, delta, version = client.ledger.remaining(dataset_id)
        entries = client.ledger.entries(dataset_id)
    emit(
        {
            "remaining_epsilon": epsilon,
            "remaining_delta": delta,
            "ledger_version": version,
            "spends": [f"{e['task_id']}: {e['state']} eps={e['epsilon']:g}" for e in entries],
        },
        as_json=as_json,
        title="Privacy budget (your own ledger)",
    )
