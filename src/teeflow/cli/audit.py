"""``teeflow audit export | verify``: a copy of the hash-chained audit log, checked offline.

``verify`` needs no trust in the server: it recomputes the chain, checks each executor
registration's evidence against the member's own attestation policy and every execution receipt
against the enclave keys so attested (client/audit_verify.py). Fetched from the server, the head
it verified is kept in the member's home, and the next verify reports a history rewritten or cut
off since.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from teeflow.attestation import AttestationError, Policy
from teeflow.cli._output import emit, fail, warn
from teeflow.cli._session import JsonOut, PassphraseFile, client_errors, session
from teeflow.client import ClientError, MemberHome
from teeflow.client.audit_verify import AuditReport, verify_audit_log
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
    home = MemberHome()
    if not home.policy_path.exists():
        fail(
            f"no attestation policy at {home.policy_path}: write one, or for a local simulated "
            "platform run `teeflow attest trust --simulated` (no hardware protection)"
        )
    try:
        policy = Policy.from_file(home.policy_path)
        server = None if file is not None else home.credentials().get("server")
        since = home.audit_head(server) if server else None
    except (AttestationError, ClientError, OSError, ValueError) as exc:
        fail(f"cannot read your home {home.root}: {exc}")
    events = _read(file) if file is not None else _fetch(passphrase_file)
    report = verify_audit_log(events, policy=policy, head=head, since=since)
    with client_errors():
        _remember(home, server, report)
    if as_json:
        emit(report.to_dict(), as_json=True, title="")
    elif report.ok:
        summary = {
            "entries": report.entries,
            "head": report.head,
            "receipts_verified": report.receipts_verified,
            "enclave_keys": ", ".join(report.enclave_keys),
            "key_ids": ", ".join(
                f"{k.measurement[:16]}…:{'—' if k.key_epoch is None else k.key_epoch}"
                for k in report.attested
            ),
        }
        emit(summary, as_json=False, title="Audit log verified")
        for refused in report.unattested:
            warn(f"{refused} (receipts signed by it are not believed)")
    if report.problem is not None:
        fail(str(report.problem))


def _remember(home: MemberHome, server: str | None, report: AuditReport) -> None:
    """Keep the attested enclave keys and, when the log verified, its head."""
    now = datetime.now(UTC).isoformat()
    for key in report.attested:
        home.record_attested_enclave(
            public_keys=key.public_keys, tee=key.tee, measurement=key.measurement, at=now
        )
    if server and report.ok and report.head and report.head_seq:
        home.save_audit_head(server, seq=report.head_seq, hash=report.head, at=now)
