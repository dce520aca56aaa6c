"""``teeflow account register | login | logout | whoami``: the member's account on a control plane.

The password goes to the server only; the session token is kept in $TEEFLOW_HOME/credentials.json
(mode 0600). Registering publishes the public halves of the local keyring; logging in checks
that the server still holds those same keys.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import httpx
import typer

from teeflow.cli._output import emit, fail
from teeflow.cli._session import (
    CaCert,
    InsecureHttp,
    JsonOut,
    PassphraseFile,
    client_errors,
    load_keys,
    open_client,
    saved_client,
    transport_of,
)
from teeflow.client import Client, MemberHome
from teeflow.client._errors import raise_for_error
from teeflow.tls import InsecureTransportError, client_verify

__all__ = ["app"]

app = typer.Typer(help="Your account on a teeflow control plane.", no_args_is_help=True)

Server = Annotated[
    str,
    typer.Option(
        "--server",
        help="Control plane URL, e.g. https://cp.example:8321 (http only on this machine)",
    ),
]
Username = Annotated[str, typer.Argument(help="Your user name on the platform.")]
PasswordEnv = Annotated[
    str | None,
    typer.Option("--password-env", help="Read the password from this environment variable."),
]
PasswordFile = Annotated[
    Path | None,
    typer.Option(
        "--password-file", help="Read the password from this file (first line).", dir_okay=False
    ),
]


def _password(password_env: str | None, password_file: Path | None, *, confirm: bool) -> str:
    if password_env is not None and password_file is not None:
        fail("give --password-env or --password-file, not both")
    if password_file is not None:
        try:
            password = (
                password_file.read_text(encoding="utf-8").split("\n", 1)[0].removesuffix("\r")
            )
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read the password file {password_file}: {exc}")
        source = f"the password file {password_file}"
    elif password_env is not None:
        password = os.environ.get(password_env, "")
        source = f"the environment variable {password_env}"
    elif sys.stdin.isatty():
        entered: str = typer.prompt(
            "Password", hide_input=True, confirmation_prompt=confirm, err=True
        )
        return entered
    else:
        fail("no password: pass --password-env VAR or --password-file FILE")
    if not password:
        fail(f"{source} is empty or unset")
    return password


def _signed_in(client: Client, username: str) -> dict[str, object]:
    return {
        "server": client.server,
        "username": username,
        "fingerprint": client.keys.fingerprint,
        "credentials": str(client.home.credentials_path),
    }


@app.command()
def register(
    username: Username,
    server: Server,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    passphrase_file: PassphraseFile = None,
    ca_cert: CaCert = None,
    insecure_http: InsecureHttp = False,
    as_json: JsonOut = False,
) -> None:
    """Create an account with your public keys, then sign in."""
    keys = load_keys(passphrase_file)  # before the password: no keys, nothing to register
    password = _password(password_env, password_file, confirm=True)
    with open_client(server, keys, ca_cert=ca_cert, insecure_http=insecure_http) as client:
        client.register(username, password)
        client.login(username, password)
        result = _signed_in(client, username)
    emit(result, as_json=as_json, title="Registered and signed in")


@app.command()
def login(
    username: Username,
    server: Server,
    password_env: PasswordEnv = None,
    password_file: PasswordFile = None,
    passphrase_file: PassphraseFile = None,
    ca_cert: CaCert = None,
    insecure_http: InsecureHttp = False,
    as_json: JsonOut = False,
) -> None:
    """Sign in; the session token (and --ca-cert) is saved in $TEEFLOW_HOME/credentials.json."""
    keys = load_keys(passphrase_file)  # before the password: no keys, nothing to register
    password = _password(password_env, password_file, confirm=False)
    with open_client(server, keys, ca_cert=ca_cert, insecure_http=insecure_http) as client:
        client.login(username, password)
        result = _signed_in(client, username)
    emit(result, as_json=as_json, title="Signed in")


@app.command()
def logout(passphrase_file: PassphraseFile = None) -> None:
    """End the session on the server and forget the local token."""
    home = MemberHome()
    credentials = home.credentials()
    if not credentials.get("token"):
        fail("not signed in")
    keys = load_keys(passphrase_file)
    try:
        with client_errors(), saved_client(home, credentials, keys) as client:
            client.logout()
    finally:
        home.clear_credentials()  # forget the token even when the server is unreachable
    typer.echo(f"signed out of {credentials['server']}", err=True)


@app.command()
def whoami(as_json: JsonOut = False) -> None:
    """Show who you are signed in as, checked with the server."""
    home = MemberHome()
    credentials = home.credentials()
    if not credentials.get("token"):
        fail("not signed in: run `teeflow account login --server URL USER`")
    headers = {"Authorization": f"Bearer {credentials['token']}"}
    with client_errors(), _http(credentials, headers) as http:
        response = http.get("/v1/users/me")
        raise_for_error(response)
        me = response.json()
    result = {
        "server": credentials["server"],
        "username": me["username"],
        "fingerprint": me["fingerprint"],
        "policy": str(home.policy_path) if home.policy_path.exists() else None,
    }
    emit(result, as_json=as_json, title="Signed in")


def _http(credentials: dict[str, str], headers: dict[str, str]) -> httpx.Client:
    """A bare HTTP client: ``whoami`` needs the token only, not the keys."""
    server = credentials["server"]
    try:
        verify = client_verify(server, **transport_of(credentials))
    except InsecureTransportError as exc:
        fail(str(exc))
    return httpx.Client(
        base_url=server,
        headers=headers,
        timeout=httpx.Timeout(30.0, connect=5.0),
        verify=verify,
    )
