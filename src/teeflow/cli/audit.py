"""``teeflow audit export | verify``: a copy of the hash-chained audit log, checked offline.

``verify`` needs no trust in the server: it recomputes the chain and checks every execution
receipt against the enclave keys the log itself announced (client/audit_verify.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from teeflow.cli._output import emit, fail
from teeflow.cli._session import JsonOut, PassphraseFile, session
from teeflow.client.audit_verify import verify_audit_log
from teeflow.crypto import canonical_json
from teeflow.server.audit import AuditChainError, read_jsonl

__all__ = ["app"]

app = typer.Typer(help="Export and verify the platform's audit log.", no_args_is_help=True)


def _fetch(passphrase_file: Path | None) -> list[dict[str, Any]]:
    with session(passphrase_file) as client:
        return client.audit()


@app.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="JSON Lines file to write.", dir_okay=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace OUT if it exists.")] = False,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Download the whole audit log as canonical JSON Lines (one entry per line)."""
    if out.exists() and not force:
        fail(f"{out} exists; use --force to replace it")
    events = _fetch(passphrase_file)
    text = "".join(canonical_json(event).decode("utf-8") + "\n" for event in events)
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    head = events[-1]["hash"] if events else None
    emit(
        {"file": str(out), "entries": len(events), "head": head},
        as_json=as_json,
        title="Audit log exported",
    )


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as handle:
            return list(read_jsonl(handle))
    except AuditChainError as exc:
        fail(f"{path}: line {exc.seq}: {exc.reason}")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {path}: {exc}")


@app.command()
def verify(
    file: Annotated[
        Path | None,
        typer.Argument(help="An exported log (default: fetch it from the server).", dir_okay=False),
    ] = None,
    head: Annotated[
        str | None,
        typer.Option("--head", help="The log must end at this hash (detects a cut-off end)."),
    ] = None,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Check the hash chain and every enclave receipt; exit 1 naming the first bad entry."""
    events = _read(file) if file is not None else _fetch(passphrase_file)
    report = verify_audit_log(events, head=head)
    if as_json:
        emit(report.to_dict(), as_json=True, title="")
    elif report.ok:
        summary = {
            "entries": report.entries,
            "head": report.head,
            "receipts_verified": report.receipts_verified,
            "enclave_keys": ", ".join(report.enclave_keys),
        }
        emit(summary, as_json=False, title="Audit log verified")
    if report.problem is not None:
        fail(str(report.problem))
