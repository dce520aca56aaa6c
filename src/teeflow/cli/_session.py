"""What every platform command shares: a signed-in ``Client`` built from the member's home.

A command opens a session, calls the SDK, and prints; every failure on the way becomes one line
on stderr and a non-zero exit::

    with session(passphrase_file) as client:
        rows = client.datasets()
    emit_rows(rows, COLUMNS, as_json=as_json, title="Datasets")

Keys are unlocked from the keyring in $TEEFLOW_HOME. A passphrase comes from ``--passphrase-file``
(or $TEEFLOW_PASSPHRASE_FILE), else $TEEFLOW_PASSPHRASE, else a hidden prompt on a terminal.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from teeflow.attestation import AttestationError
from teeflow.cli._escape import safe
from teeflow.cli._output import cell, fail, joined
from teeflow.cli.keys import read_passphrase
from teeflow.client import ApiError, Client, ClientError, Keyring, MemberHome, MemberKeys
from teeflow.client.keyring import KeyringError
from teeflow.tls import CA_CERT_ENV, INSECURE_HTTP_ENV, env_ca_cert, env_insecure_http

__all__ = [
    "CaCert",
    "InsecureHttp",
    "JsonOut",
    "PassphraseFile",
    "client_errors",
    "emit_rows",
    "flat",
    "load_keys",
    "open_client",
    "parse_assignment",
    "parse_names",
    "parse_value",
    "saved_client",
    "session",
    "transport_of",
]

PASSPHRASE_ENV = "TEEFLOW_PASSPHRASE"  # noqa: S105 - a variable name, not a secret

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        envvar="TEEFLOW_PASSPHRASE_FILE",
        help=f"Read the keyring passphrase from this file (else ${PASSPHRASE_ENV}).",
        dir_okay=False,
    ),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def load_keys(passphrase_file: Path | None = None) -> MemberKeys:
    """Unlock the member's keys, or exit with a one-line reason."""
    keyring = Keyring()
    if not keyring.exists():
        fail("no keys: run `teeflow keys init`")
    try:
        passphrase: str | None = None
        if keyring.public().encrypted:
            passphrase = _passphrase(passphrase_file)
        return keyring.load(passphrase)
    except KeyringError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read the keyring in {keyring.root}: {exc.strerror or exc}")


def _passphrase(passphrase_file: Path | None) -> str:
    from_file = read_passphrase(passphrase_file, None)
    if from_file is not None:
        return from_file
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV]
    if sys.stdin.isatty():
        entered: str = typer.prompt("Keyring passphrase", hide_input=True, err=True)
        return entered
    fail(f"your keys are passphrase-protected: set {PASSPHRASE_ENV} or pass --passphrase-file")


@contextmanager
def client_errors() -> Iterator[None]:
    """Turn SDK, attestation and transport errors into ``fail()``; a 401 says how to sign in."""
    try:
        yield
    except ApiError as exc:
        if exc.status == 401:
            fail(f"{exc.message}: run `teeflow account login --server URL USER` again")
        fail(str(exc))
    except (ClientError, AttestationError) as exc:
        fail(str(exc))
    except httpx.HTTPError as exc:
        fail(f"cannot talk to the control plane: {exc}")


CaCert = Annotated[
    Path | None,
    typer.Option(
        "--ca-cert",
        envvar=CA_CERT_ENV,
        dir_okay=False,
        help="PEM of the CA that signed the control plane's certificate (a private "
        "deployment's ca.pem); default: the system's roots. Remembered with the session.",
    ),
]
InsecureHttp = Annotated[
    bool,
    typer.Option(
        "--insecure-http",
        envvar=INSECURE_HTTP_ENV,
        help="Allow plain http to another host: your password and token travel in clear.",
    ),
]


def transport_of(credentials: Mapping[str, str]) -> dict[str, Any]:
    """The ``ca_cert``/``insecure_http`` keywords a session was made with (else the env's)."""
    ca_cert = credentials.get("ca_cert")
    return {
        "ca_cert": Path(ca_cert) if ca_cert else env_ca_cert(),
        "insecure_http": credentials.get("insecure_http") == "1" or env_insecure_http(),
    }


@contextmanager
def open_client(
    server: str, keys: MemberKeys, *, ca_cert: Path | None = None, insecure_http: bool = False
) -> Iterator[Client]:
    """A client for ``server`` that is not signed in yet (register, login)."""
    with client_errors():
        client = Client(
            server, keys=keys, home=MemberHome(), ca_cert=ca_cert, insecure_http=insecure_http
        )
        with client:
            yield client


@contextmanager
def session(passphrase_file: Path | None = None) -> Iterator[Client]:
    """The signed-in member's client, closed on exit; errors inside become ``fail()``."""
    home = MemberHome()
    try:
        credentials = home.credentials()
    except (OSError, ValueError) as exc:
        fail(f"cannot read {home.credentials_path}: {exc}")
    if not credentials.get("token") or not credentials.get("server"):
        fail("not signed in: run `teeflow account login --server URL USER`")
    keys = load_keys(passphrase_file)
    with client_errors(), saved_client(home, credentials, keys) as client:
        yield client


def saved_client(home: MemberHome, credentials: Mapping[str, str], keys: MemberKeys) -> Client:
    """A client for the saved session ``credentials`` (server, token, transport settings);
    ClientError when its URL is refused (plain http to another host)."""
    return Client(
        credentials["server"],
        keys=keys,
        home=home,
        token=credentials["token"],
        username=credentials.get("username"),
        **transport_of(credentials),
    )


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> (key, value); exits with a one-line error naming ``option`` otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        fail(f"{option} expects KEY=VALUE, got {safe(text)!r}")
    return key.strip(), value.strip()


def parse_names(value: str) -> list[str]:
    """``alice,bob`` -> ["alice", "bob"] (blanks dropped)."""
    return [name.strip() for name in value.split(",") if name.strip()]


def parse_value(value: str) -> Any:
    """A JSON value when ``value`` parses as JSON, else the string itself."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def emit_rows(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    as_json: bool,
    title: str,
) -> None:
    """Print a list: all fields as a JSON array, or ``columns`` as a Rich table."""
    if as_json:
        typer.echo(json.dumps(list(rows), indent=2, default=str))
        return
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell(row.get(column))) for column in columns))
    Console(highlight=False, soft_wrap=False).print(table)


def flat(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with lists joined by commas and mappings as ``k=v``, for a two-column table."""
    return {
        key: joined(value) if isinstance(value, list | dict) else value
        for key, value in data.items()
    }
