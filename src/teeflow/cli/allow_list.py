"""``teeflow enclave allow-list propose | sign | show | submit``: the measurement allow-list the
participants sign (docs/key-release.md).

One participant proposes a document (which measurements may receive their enclave key, at which
epoch, which are revoked) as a file; each participant signs that file with the member signing
key in their keyring; anyone submits it to the key service (through the control plane's relay).
The key service installs it only if every pinned participant signed it and its version is
higher than the one in force.

    teeflow enclave allow-list propose --server URL --entry tdx:<mr_td hex>:1 --out list.json
    teeflow enclave allow-list sign list.json          # each participant, in turn
    teeflow enclave allow-list show list.json
    teeflow enclave allow-list submit list.json --server URL
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from teeflow.cli._output import emit, fail
from teeflow.cli._session import CaCert, InsecureHttp, JsonOut, PassphraseFile, load_keys
from teeflow.client import MemberHome
from teeflow.enclave.keyring import (
    AllowListError,
    allow_list_document,
    sign_allow_list,
    valid_signers,
)
from teeflow.tls import InsecureTransportError, client_verify

__all__ = ["app"]

app = typer.Typer(help="The measurement allow-list participants sign.", no_args_is_help=True)

ServerOption = Annotated[
    str | None, typer.Option("--server", help="Control plane URL (relays the key service).")
]


def _read(path: Path) -> dict[str, Any]:
    try:
        document: dict[str, Any] = json.loads(path.read_text())
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
    except ValueError:
        fail(f"{path} is not JSON; make one with `teeflow enclave allow-list propose`")
    if not isinstance(document, dict) or not isinstance(document.get("body"), dict):
        fail(f"{path} is not an allow-list document (no body)")
    return document


def _write(path: Path, document: dict[str, Any]) -> None:
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")


def _verify(server: str, ca_cert: Path | None, insecure_http: bool) -> Any:
    """httpx's ``verify=`` for ``server``; exits when its URL is refused (plain http elsewhere)."""
    try:
        return client_verify(server, ca_cert=ca_cert, insecure_http=insecure_http)
    except InsecureTransportError as exc:
        fail(str(exc))


def _in_force(server: str, ca_cert: Path | None, insecure_http: bool) -> dict[str, Any] | None:
    verify = _verify(server, ca_cert, insecure_http)
    try:
        response = httpx.get(f"{server.rstrip('/')}/kbs/v0/allow-list", timeout=30.0, verify=verify)
    except httpx.HTTPError as exc:
        fail(f"cannot reach {server}: {exc}")
    if response.status_code == 404:
        _check_not_rolled_back(server, None)
        return None
    if response.status_code >= 400:
        fail(f"the key service answered HTTP {response.status_code}: {response.text[:200]}")
    document: dict[str, Any] = response.json()
    _check_not_rolled_back(server, document)
    return document


def _check_not_rolled_back(server: str, document: dict[str, Any] | None) -> None:
    """Exit when the list in force is older than one this member saw in force at ``server``
    (an operator who restarts the key service with an older signed list undoes revocations:
    nothing on the host is a monotonic counter); otherwise remember its version."""
    home = MemberHome()
    seen = home.allow_list_version(server)
    try:
        version = int(document["body"]["version"]) if document else 0
    except (KeyError, TypeError, ValueError):
        fail("the key service's allow-list is malformed (no body version)")
    if seen is not None and version < seen:
        fail(
            f"the key service's allow-list in force is version {version}, older than version "
            f"{seen} you saw in force before: it was rolled back (revocations since are "
            "undone); submit the newest signed list again and tell the other participants"
        )
    home.save_allow_list_version(server, version)


def _entry(text: str) -> tuple[str, str, int]:
    parts = text.split(":")
    if len(parts) != 3 or not parts[2].isdigit():
        raise typer.BadParameter(f"{text!r}: write TEE:MEASUREMENT_HEX:EPOCH, e.g. tdx:ab12…:1")
    return parts[0], parts[1], int(parts[2])


@app.command("propose")
def propose(
    out: Annotated[Path, typer.Option("--out", help="Write the unsigned document here.")],
    entry: Annotated[
        list[str], typer.Option("--entry", help="TEE:MEASUREMENT_HEX:EPOCH (repeat).")
    ],
    revoke: Annotated[
        list[str] | None, typer.Option("--revoke", help="A measurement to revoke (repeat).")
    ] = None,
    version: Annotated[
        int | None, typer.Option(help="Version (default: the one in force + 1, from --server).")
    ] = None,
    server: ServerOption = None,
    ca_cert: CaCert = None,
    insecure_http: InsecureHttp = False,
) -> None:
    """Write an unsigned allow-list document for the participants to sign."""
    if version is None:
        if server is None:
            fail("give --version, or --server to take the version in force + 1")
        current = _in_force(server, ca_cert, insecure_http)
        version = 1 + (int(current["body"]["version"]) if current else 0)
    try:
        document = allow_list_document(
            version=version, entries=[_entry(e) for e in entry], revoked=revoke or []
        )
    except AllowListError as exc:
        fail(str(exc))
    _write(out, document)
    typer.echo(f"wrote allow-list version {version} to {out}; each participant now signs it")


@app.command("sign")
def sign(
    path: Annotated[Path, typer.Argument(help="The allow-list document (signed in place).")],
    passphrase_file: PassphraseFile = None,
) -> None:
    """Add your member signature to the document (after reading what it allows)."""
    document = _read(path)
    keys = load_keys(passphrase_file)
    try:
        signed = sign_allow_list(document, keys.signing_key)
    except AllowListError as exc:
        fail(str(exc))
    _write(path, signed)
    typer.echo(
        f"signed allow-list version {signed['body']['version']} as "
        f"{keys.signing_key.verify_key.b64()}"
    )


@app.command("show")
def show(
    path: Annotated[Path | None, typer.Argument(help="A document (else the one in force).")] = None,
    server: ServerOption = None,
    ca_cert: CaCert = None,
    insecure_http: InsecureHttp = False,
    as_json: JsonOut = False,
) -> None:
    """Show a document's version, entries, revocations and which signatures verify."""
    if path is not None:
        document = _read(path)
    elif server is not None:
        found = _in_force(server, ca_cert, insecure_http)
        if found is None:
            fail("the key service has no allow-list yet")
        document = found
    else:
        fail("give a document, or --server for the allow-list in force")
    body = document["body"]
    try:
        good, bad = valid_signers(document)
    except (KeyError, TypeError, ValueError):
        fail("the document's signatures are malformed")
    emit(
        {
            "version": body.get("version"),
            "entries": [f"{e['tee']}:{e['measurement']}:{e['epoch']}" for e in body["entries"]],
            "revoked": list(body.get("revoked", [])),
            "signed_by": sorted(good),
            "bad_signatures": sorted(bad),
        },
        as_json=as_json,
        title="Allow-list",
    )


@app.command("submit")
def submit(
    path: Annotated[Path, typer.Argument(help="The signed allow-list document.")],
    server: Annotated[str, typer.Option("--server", help="Control plane URL.")],
    ca_cert: CaCert = None,
    insecure_http: InsecureHttp = False,
) -> None:
    """Send the signed document to the key service; it refuses unless everyone signed."""
    document = _read(path)
    verify = _verify(server, ca_cert, insecure_http)
    try:
        response = httpx.put(
            f"{server.rstrip('/')}/kbs/v0/allow-list", json=document, timeout=30, verify=verify
        )
    except httpx.HTTPError as exc:
        fail(f"cannot reach {server}: {exc}")
    if response.status_code >= 400:
        try:
            reason = str(response.json().get("message", response.text))
        except ValueError:
            reason = response.text[:200]
        fail(f"the key service refused the allow-list: {reason}")
    version = int(response.json()["version"])
    MemberHome().save_allow_list_version(server, version)
    typer.echo(f"allow-list version {version} is in force")
