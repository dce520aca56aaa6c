"""``teeflow keys init | show``: the member's signing and receiving keys (client/keyring.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from teeflow.cli._output import emit, fail, warn
from teeflow.client.keyring import Keyring, KeyringError, MemberPublicKeys

__all__ = ["app", "read_passphrase"]

app = typer.Typer(help="Your signing and receiving keys.", no_args_is_help=True)

PassphraseFile = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="Read the passphrase from this file (first line).",
        dir_okay=False,
    ),
]
PassphraseEnv = Annotated[
    str | None,
    typer.Option("--passphrase-env", help="Read the passphrase from this environment variable."),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def read_passphrase(passphrase_file: Path | None, passphrase_env: str | None) -> str | None:
    """The passphrase from ``--passphrase-file`` or ``--passphrase-env``, or None if neither.

    Exits with a one-line error if both are given, or the source is missing or empty. Only
    the trailing newline of a file is dropped; every other character counts.
    """
    if passphrase_file is not None and passphrase_env is not None:
        fail("give --passphrase-file or --passphrase-env, not both")
    if passphrase_file is not None:
        try:
            text = passphrase_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"cannot read the passphrase file {passphrase_file}: {exc}")
        passphrase = text.split("\n", 1)[0].removesuffix("\r")
        source = f"the passphrase file {passphrase_file}"
    elif passphrase_env is not None:
        passphrase = os.environ.get(passphrase_env, "")
        source = f"the environment variable {passphrase_env}"
    else:
        return None
    if not passphrase:
        fail(f"{source} is empty or unset")
    return passphrase


def _public_view(keyring: Keyring, public: MemberPublicKeys) -> dict[str, object]:
    return {
        "fingerprint": public.fingerprint,
        "signing_public_key": public.verify_key.b64(),
        "receiving_public_key": public.public_key.b64(),
        "passphrase_protected": public.encrypted,
        "keyring": str(keyring.root),
    }


@app.command()
def init(
    passphrase_file: PassphraseFile = None,
    passphrase_env: PassphraseEnv = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace existing keys (they are lost for good).")
    ] = False,
    as_json: JsonOut = False,
) -> None:
    """Create your Ed25519 signing key and X25519 receiving key in $TEEFLOW_HOME."""
    passphrase = read_passphrase(passphrase_file, passphrase_env)
    keyring = Keyring()
    try:
        public = keyring.init(passphrase, force=force)
    except KeyringError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot write the keyring in {keyring.root}: {exc.strerror or exc}")
    if passphrase is None:
        warn(
            f"private keys in {keyring.keys_path} are not passphrase-protected; "
            "use --passphrase-file or --passphrase-env to protect them"
        )
    emit(_public_view(keyring, public), as_json=as_json, title="Member keys created")


@app.command()
def show(as_json: JsonOut = False) -> None:
    """Show your public keys and fingerprint (no passphrase needed)."""
    keyring = Keyring()
    try:
        public = keyring.public()
    except KeyringError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"cannot read the keyring in {keyring.root}: {exc.strerror or exc}")
    emit(_public_view(keyring, public), as_json=as_json, title="Member keys")
