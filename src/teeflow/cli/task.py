"""``teeflow task ...``: propose, review, approve, run and collect a task.

A task runs only when every participant signed the same contract. ``show`` renders the contract
for a human together with this member's own review (client/_review.py); ``approve`` repeats that
review, attests the enclave against the member's policy and only then signs and wraps keys.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape as escape_markup
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from teeflow.cli._contract_view import render_contract
from teeflow.cli._escape import safe
from teeflow.cli._output import emit, fail, warn
from teeflow.cli._session import (
    JsonOut,
    PassphraseFile,
    emit_rows,
    flat,
    parse_assignment,
    parse_names,
    parse_value,
    session,
)
from teeflow.client import Client, ClientError
from teeflow.client._pins import participant_trust
from teeflow.enclave.run_state import DEFAULT_START_WITHIN_S, MAX_START_WITHIN_S

__all__ = ["app", "render_contract"]

app = typer.Typer(help="Propose, approve, run and collect tasks.", no_args_is_help=True)

TaskId = Annotated[str, typer.Argument(help="The task id.", metavar="ID")]
_DISCLOSURE_CHANNELS = ("progress", "errors")


def _many(name: str, meaning: str) -> Any:
    """A repeatable option (typer.Option is untyped; Any keeps mypy strict quiet)."""
    return typer.Option(name, help=f"{meaning}; repeat for more.")


@app.command()
def propose(
    function: Annotated[str, typer.Argument(help="A built-in name or an uploaded function's id.")],
    inputs: Annotated[list[str] | None, _many("--input", "SLOT=DATASET_ID")] = None,
    outputs: Annotated[list[str] | None, _many("--output", "SLOT=u1,u2: readable by them")] = None,
    joint_outputs: Annotated[
        list[str] | None, _many("--joint-output", "SLOT=u1,u2: joint, sealed to the enclave")
    ] = None,
    arguments: Annotated[list[str] | None, _many("--arg", "KEY=VALUE (JSON if it parses)")] = None,
    disclose: Annotated[
        list[str] | None, _many("--disclose", "progress=u1,u2 or errors=u1: who reads run messages")
    ] = None,
    description: Annotated[str, typer.Option("--description", help="Free text.")] = "",
    pads: Annotated[
        list[str] | None, _many("--pad", "SLOT=pow2 or SLOT=BYTES: pad the output to a bucket")
    ] = None,
    expires_days: Annotated[
        float,
        typer.Option(
            "--expires-days", min=0.001, max=366, help="The contract expires after (signed)."
        ),
    ] = 7.0,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Propose a task; every participant must then approve the exact contract, which expires
    after --expires-days (no enclave runs it later)."""
    pairs = [parse_assignment(item, "--input") for item in inputs or []]
    slots = dict(pairs)
    if len(slots) != len(pairs):
        fail("an --input slot is given twice")
    spec: dict[str, dict[str, Any]] = {}
    for option, field, items in (
        ("--output", "recipients", outputs),
        ("--joint-output", "joint_owners", joint_outputs),
    ):
        for item in items or []:
            slot, names = parse_assignment(item, option)
            if slot in spec:
                fail(f"output {slot!r} is given twice")
            spec[slot] = {field: parse_names(names)}
    if not spec:
        fail("a task needs at least one --output or --joint-output")
    for item in pads or []:
        slot, bucket = parse_assignment(item, "--pad")
        if slot not in spec:
            fail(f"--pad names {slot!r}, which is not an --output")
        spec[slot]["pad"] = bucket if bucket == "pow2" else parse_value(bucket)
    args = {
        key: parse_value(value)
        for key, value in (parse_assignment(a, "--arg") for a in arguments or [])
    }
    disclosure: dict[str, list[str]] = {}
    for item in disclose or []:
        channel, names = parse_assignment(item, "--disclose")
        if channel not in _DISCLOSURE_CHANNELS:
            fail(f"--disclose takes {' or '.join(_DISCLOSURE_CHANNELS)}, not {channel!r}")
        disclosure[channel] = parse_names(names)
    with session(passphrase_file) as client:
        task = client.propose(
            function,
            inputs=slots,
            outputs=spec,
            arguments=args,
            disclosure=disclosure,
            description=description,
            expires_in_s=max(1, round(expires_days * 86400)),
        )
    if as_json:
        emit(task, as_json=True, title="")
        return
    emit(flat(_summary(task)), as_json=False, title="Task proposed")
    typer.echo(f"review it with `teeflow task show {safe(task['id'])}`", err=True)


def _summary(task: Mapping[str, Any]) -> dict[str, Any]:
    approvals = task.get("approvals", {})
    return {
        "id": task["id"],
        "status": task["status"],
        "function": task["contract"]["function"]["name"],
        "creator": task["creator"],
        "approved": sorted(u for u, d in approvals.items() if d == "approve"),
        "pending": list(task.get("pending", [])),
        "contract_hash": task["contract_hash"],
    }


@app.command("list")
def list_(
    mine: Annotated[bool, typer.Option("--mine", help="Only tasks you proposed.")] = False,
    invited: Annotated[
        bool, typer.Option("--invited", help="Only tasks others proposed naming you.")
    ] = False,
    status: Annotated[
        str | None, typer.Option("--status", help="Only tasks in this state.")
    ] = None,
    creator: Annotated[
        str | None, typer.Option("--creator", help="Only tasks this member proposed.")
    ] = None,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """List the tasks you take part in (filters keep your own from being buried)."""
    if mine and invited:
        fail("--mine and --invited exclude each other; give one")
    role = "creator" if mine else "invited" if invited else None
    with session(passphrase_file) as client:
        tasks = client.tasks(role=role, status=status, creator=creator)
    rows = tasks if as_json else [_summary(t) for t in tasks]
    emit_rows(
        rows,
        ("id", "status", "function", "creator", "approved", "pending"),
        as_json=as_json,
        title="Tasks",
    )


def _review(client: Client, task: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """This member's warnings, or the reason it cannot review (no policy, failed attestation...)."""
    try:
        return client.review(task), None
    except ClientError as exc:
        return [], str(exc)


@app.command()
def show(
    task_id: TaskId,
    code: Annotated[
        bool,
        typer.Option(
            "--code", help="Also print the uploaded function's plain source, hash-checked."
        ),
    ] = False,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Show the contract in readable form, with your review's warnings."""
    with session(passphrase_file) as client:
        task = client.task(task_id)
        warnings, problem = _review(client, task)
        function = task["contract"]["function"]
        readable = function["kind"] == "uploaded" and not function.get("sealed")
        source = client.function_source(task_id) if code and readable else None
        if code and not readable:
            warn(
                "no source to show: the function is a built-in (teeflow's own code, in the "
                "measurement) or sealed (confidential to its owner)"
            )
        keys_trust = participant_trust(task["contract"], me=client.username or "", home=client.home)
    if task.get("withdrawal_breach"):
        warn(task["withdrawal_breach"])
    if as_json:
        extra = {"warnings": warnings, "review_error": problem, "keys": keys_trust}
        emit({**task, **extra, **({"source": source} if code else {})}, as_json=True, title="")
        return
    console = Console(highlight=False, soft_wrap=True)
    for line in render_contract(task, keys_trust):
        console.print(line)
    if source is not None:
        console.print(Text("function source (sha256 checked against the contract):", "bold"))
        for code_line in source.splitlines():
            console.print(Text("  | " + safe(code_line)))
    if problem:
        console.print(Text.assemble(("DO NOT APPROVE: ", "bold red"), safe(problem)))
    for message in warnings:
        console.print(Text.assemble(("warning: ", "bold yellow"), safe(message)))
    if not problem and not warnings:
        console.print("review: no warnings")


StartWithin = Annotated[
    int,
    typer.Option(
        "--start-within",
        min=1,
        max=MAX_START_WITHIN_S // 60,
        help="Minutes an enclave has to start it; later it only resumes a checkpoint.",
    ),
]


@app.command()
def approve(
    task_id: TaskId,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Approve without asking (after reviewing).")
    ] = False,
    run: Annotated[
        bool,
        typer.Option(
            "--run",
            help="Creator only: also sign the run authorisation now, so the task is queued as "
            "the last approval arrives (no `task run`). The --start-within window counts from "
            "now; if the others approve after it, run the task with `task run`.",
        ),
    ] = False,
    start_within: StartWithin = DEFAULT_START_WITHIN_S // 60,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Review the contract, then sign it and wrap your data keys to the attested enclave."""
    with session(passphrase_file) as client:
        task = client.task(task_id)
        warnings = client.review(task)  # blocking problems fail here, before any prompt
        for message in warnings:
            warn(message)
        if not yes:
            if not sys.stdin.isatty():
                fail("not approving unconfirmed: review `teeflow task show ID`, then pass --yes")
            verb = "Approve and run" if run else "Approve"
            if not typer.confirm(f"{verb} task {task_id} ({len(warnings)} warning(s))?", err=True):
                fail("not approved")
        # The task just reviewed and shown is the one signed: no second fetch.
        result = client.approve(task_id, run=run, start_within_s=start_within * 60, task=task)
    title = "Queued" if result.get("status") == "queued" else "Approved"
    emit(result if as_json else flat(_summary(result)), as_json=as_json, title=title)


@app.command()
def reject(
    task_id: TaskId,
    reason: Annotated[str, typer.Option("--reason", help="Why, for the other parties.")] = "",
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Reject a proposed task; it can then never run."""
    with session(passphrase_file) as client:
        result = client.reject(task_id, reason)
    emit(result if as_json else flat(_summary(result)), as_json=as_json, title="Rejected")


@app.command()
def run(
    task_id: TaskId,
    start_within: StartWithin = DEFAULT_START_WITHIN_S // 60,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Sign a run authorisation for the approved contract and queue it for an enclave.

    Without this signature no enclave runs the task, so a task you cancel before running it can
    never run. A cancel after this is honoured by the enclave only once --start-within has passed
    (docs/run-authorisation.md)."""
    with session(passphrase_file) as client:
        result = client.run(task_id, start_within_s=start_within * 60)
    emit(result if as_json else flat(_summary(result)), as_json=as_json, title="Queued")


@app.command()
def withdraw(
    task_id: TaskId, passphrase_file: PassphraseFile = None, as_json: JsonOut = False
) -> None:
    """Withdraw your approval before the task runs (signed; the task is canceled).

    The enclave refuses a task it is shown your withdrawal for. The control plane could withhold
    it; `teeflow task show` then reports loudly if the task's receipt shows it ran anyway."""
    with session(passphrase_file) as client:
        result = client.withdraw(task_id)
    emit(result if as_json else flat(_summary(result)), as_json=as_json, title="Withdrawn")


def _report_rejected(client: Client, task_id: str) -> None:
    for rejected in client.rejected_events(task_id):
        warn(f"rejected event {rejected.seq}, not shown: {rejected.reason}")


@app.command()
def events(
    task_id: TaskId,
    after: Annotated[int, typer.Option("--after", min=0, help="Only events after this seq.")] = 0,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Progress and error messages the enclave signed for you, decrypted here; anything else
    the control plane serves (forged or replayed) is rejected and counted, never shown."""
    with session(passphrase_file) as client:
        shown = client.events(task_id, after=after)
        rejected = client.rejected_events(task_id)
    if as_json:
        body = {"events": shown, "rejected": [{"seq": r.seq, "reason": r.reason} for r in rejected]}
        emit(body, as_json=True, title="")
        return
    for event in shown:
        typer.echo(f"{event['seq']} {safe(event.get('kind'))}: {_metrics(event)}")
    for item in rejected:
        warn(f"rejected event {item.seq}, not shown: {item.reason}")


@app.command()
def cancel(
    task_id: TaskId, passphrase_file: PassphraseFile = None, as_json: JsonOut = False
) -> None:
    """Cancel a task that has not finished."""
    with session(passphrase_file) as client:
        result = client.cancel(task_id)
    emit(result if as_json else flat(_summary(result)), as_json=as_json, title="Canceled")


@contextmanager
def _progress_view(enabled: bool) -> Iterator[Any]:
    """Yield ``on_event(event)``: a live bar on a terminal, one line per event otherwise."""
    if not enabled:
        yield lambda _event: None
        return
    if not sys.stderr.isatty():

        def print_progress(event: Mapping[str, Any]) -> None:
            if event.get("kind") == "progress":  # errors are reported once, at the end
                typer.echo(f"progress: {_metrics(event)}", err=True)

        yield print_progress
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with bar:
        job = bar.add_task("running", total=None, metrics="")

        def on_event(event: Mapping[str, Any]) -> None:
            if event.get("kind") != "progress":
                return
            epoch, epochs = event.get("epoch"), event.get("epochs")
            if isinstance(epoch, int | float) and isinstance(epochs, int | float) and epochs > 0:
                bar.update(
                    job, completed=epoch, total=epochs, description=f"epoch {epoch}/{epochs}"
                )
            bar.update(job, metrics=escape_markup(_metrics(event)))  # the column reads markup

        yield on_event


def _metrics(event: Mapping[str, Any]) -> str:
    """Progress values as one line, escaped (they came from the function)."""
    return "  ".join(
        f"{safe(k)}={safe(v)}" for k, v in event.items() if k not in ("seq", "kind", "enclave_seq")
    )


@app.command()
def wait(
    task_id: TaskId,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Give up after this many seconds.")
    ] = 600.0,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Wait for a task, showing progress disclosed to you; non-zero unless it succeeded."""
    events: list[dict[str, Any]] = []
    with session(passphrase_file) as client, _progress_view(not as_json) as show_event:

        def on_event(event: dict[str, Any]) -> None:
            events.append(event)
            show_event(event)

        task = client.wait(task_id, timeout=timeout, on_event=on_event)
        _report_rejected(client, task_id)
    if task.get("withdrawal_breach"):
        warn(task["withdrawal_breach"])
    errors = [str(e.get("message", e)) for e in events if e.get("kind") == "error"]
    result = {**_summary(task), "failure_reason": task.get("failure_reason"), "errors": errors}
    if as_json:
        emit({**result, "events": events}, as_json=True, title="")
    elif task["status"] == "succeeded":
        emit(flat(result), as_json=False, title="Task finished")
    if task["status"] != "succeeded":
        for message in errors:
            warn(f"enclave error (decrypted, disclosed to you): {message}")
        fail(f"task {task_id} {task['status']}: {task.get('failure_reason') or 'no reason given'}")


@app.command()
def output(
    task_id: TaskId,
    slot: Annotated[str, typer.Argument(help="The output slot.")],
    out: Annotated[
        Path, typer.Option("--out", help="Where to write the plaintext.", dir_okay=False)
    ],
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Download an output addressed to you, check it against the receipt, decrypt it here."""
    if out.exists() and not force:
        fail(f"{out} exists; use --force to replace it")
    with session(passphrase_file) as client:
        client.output(task_id, slot, destination=out)
    result = {"task": task_id, "slot": slot, "file": str(out), "size": out.stat().st_size}
    emit(result, as_json=as_json, title="Output decrypted")


@app.command()
def receipt(
    task_id: TaskId, passphrase_file: PassphraseFile = None, as_json: JsonOut = False
) -> None:
    """Show the enclave's signed receipt, verified against the contract's enclave key."""
    with session(passphrase_file) as client:
        verified = client.receipt(task_id)
    if as_json:
        emit({**verified, "verified": True}, as_json=True, title="")
        return
    body = dict(verified["body"])
    body["inputs"] = ", ".join(f"{k}={v}" for k, v in sorted(body.get("inputs", {}).items()))
    body["outputs"] = ", ".join(
        f"{k}={v.get('ciphertext_sha256')}" for k, v in sorted(body.get("outputs", {}).items())
    )
    emit({"verified": True, **body}, as_json=False, title="Receipt (signature verified)")
    if body.get("simulated"):
        warn("the receipt comes from a SIMULATED enclave: no hardware protection")


@app.command()
def settle(
    task_id: TaskId, passphrase_file: PassphraseFile = None, as_json: JsonOut = False
) -> None:
    """Apply the task's signed receipt to your privacy-budget ledger: a refund if the enclave
    says the function never ran, else the spend stands (docs/privacy.md)."""
    with session(passphrase_file) as client:
        states = client.settle(task_id)
    emit(
        {slot: state for slot, state in states.items()} or {"inputs": "none of yours is budgeted"},
        as_json=as_json,
        title="Ledger settled",
    )


@app.command()
def infer(
    task_id: TaskId,
    input_file: Annotated[
        Path,
        typer.Option(
            "--input",
            help='Rows to score: a CSV table, or JSON ({"rows": [...]} or a list of rows).',
            exists=True,
            dir_okay=False,
        ),
    ],
    timeout: Annotated[
        float, typer.Option("--timeout", help="Give up after this many seconds.")
    ] = 60.0,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Send rows to a running inference session: sealed to its enclave and signed here, answered
    sealed to you alone (docs/inference.md)."""
    data = input_file.read_bytes()
    rows: Any = data
    if data.lstrip()[:1] == b"[":  # a bare JSON list of rows
        try:
            rows = json.loads(data)
        except ValueError:
            fail(f"{input_file} is not valid JSON")
    with session(passphrase_file) as client:
        predictions = client.infer(task_id, rows, timeout=timeout)
    columns = list(predictions[0]) if predictions else []
    emit_rows(predictions, columns, as_json=as_json, title="Predictions (decrypted here)")
