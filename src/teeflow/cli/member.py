"""``teeflow member list | show | verify``: the other members' keys this home pinned.

The control plane serves every member's public keys, and it is not trusted. The first contract
that shows a member pins its keys in your home (trust on first use); review refuses a contract
that later shows other keys for it. To be sure the pin is the member's own, compare the safety
number (60 digits, the same on both machines) with the member out of band, by phone or in person,
and run ``teeflow member verify NAME --safety-number DIGITS`` (client/_pins.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from teeflow.cli._output import emit, fail, warn
from teeflow.cli._session import JsonOut, PassphraseFile, client_errors, emit_rows, session
from teeflow.client import MemberHome
from teeflow.client._pins import (
    format_digits,
    identity_number,
    key_fingerprint,
    parse_digits,
    pin_record,
    safety_number,
)
from teeflow.client.keyring import Keyring, KeyringError

__all__ = ["app"]

app = typer.Typer(help="Pin and verify other members' public keys.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="The member's username.", metavar="NAME")]


def _me(home: MemberHome) -> tuple[str, dict[str, str]]:
    """This member's username and public keys (no passphrase needed)."""
    try:
        public = Keyring(home.root).public()
        username = home.credentials().get("username")
    except (KeyringError, OSError, ValueError) as exc:
        fail(f"cannot read your keys: {exc}; run `teeflow keys init`")
    if not username:
        fail("not signed in: run `teeflow account login --server URL USER`")
    return username, {"sign_pk": public.verify_key.b64(), "enc_pk": public.public_key.b64()}


def _served(name: str, passphrase_file: Any) -> dict[str, str]:
    with session(passphrase_file) as client:
        user = client.member(name)
    return {"sign_pk": str(user["sign_pk"]), "enc_pk": str(user["enc_pk"])}


def _view(
    name: str, record: Mapping[str, Any], me: str, my_keys: Mapping[str, str]
) -> dict[str, Any]:
    return {
        "member": name,
        "verified": bool(record.get("verified")),
        "fingerprint": key_fingerprint(record),
        "identity_number": format_digits(identity_number(name, record)),
        "safety_number": format_digits(safety_number(me, my_keys, name, record)),
        "pinned_from": record.get("source"),
        "pinned_at": record.get("pinned_at"),
        "sign_pk": record.get("sign_pk"),
        "enc_pk": record.get("enc_pk"),
    }


@app.command("list")
def list_members(as_json: JsonOut = False) -> None:
    """The members whose keys your home pinned, and whether you verified them."""
    home = MemberHome()
    with client_errors():
        pinned = home.pinned_members()
    rows = [
        {
            "member": name,
            "verified": bool(record.get("verified")),
            "fingerprint": key_fingerprint(record),
            "pinned_from": record.get("source"),
        }
        for name, record in sorted(pinned.items())
    ]
    columns = ["member", "verified", "fingerprint", "pinned_from"]
    emit_rows(rows, columns, as_json=as_json, title="Pinned members")


@app.command()
def show(name: Name, passphrase_file: PassphraseFile = None, as_json: JsonOut = False) -> None:
    """Show a member's pinned keys and your safety number with it (pins it on first use)."""
    home = MemberHome()
    me, my_keys = _me(home)
    with client_errors():
        record = home.pinned_member(name)
        if record is None:
            record = pin_record(_served(name, passphrase_file), source="`member show`, from server")
            home.pin_member(name, record)
            warn(f"pinned the keys the server shows for {name!r} now (trust on first use)")
    emit(_view(name, record, me, my_keys), as_json=as_json, title=f"Member {name}")
    if not record.get("verified"):
        warn(
            f"not verified: compare the safety number with {name!r} out of band, then run "
            f"`teeflow member verify {name} --safety-number DIGITS`"
        )


@app.command()
def verify(
    name: Name,
    safety: Annotated[
        str | None,
        typer.Option("--safety-number", help="The 60 digits the member reads you (spaces ok)."),
    ] = None,
    fingerprint: Annotated[
        str | None,
        typer.Option("--fingerprint", help="The member's own `teeflow keys show` fingerprint."),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Pin the keys the server shows now (after a key change)."),
    ] = False,
    passphrase_file: PassphraseFile = None,
    as_json: JsonOut = False,
) -> None:
    """Mark a member verified once its safety number (or fingerprint) matches the pinned keys."""
    if (safety is None) == (fingerprint is None):
        fail("give exactly one of --safety-number or --fingerprint")
    home = MemberHome()
    me, my_keys = _me(home)
    with client_errors():
        record = home.pinned_member(name)
    if record is None or replace:
        record = pin_record(_served(name, passphrase_file), source="`member verify`, from server")
    if safety is not None:
        try:
            given = parse_digits(safety)
        except ValueError as exc:
            fail(str(exc))
        matches = given == safety_number(me, my_keys, name, record)
    else:
        matches = (fingerprint or "").strip().lower() == key_fingerprint(record)
    if not matches:
        fail(
            f"the number you were given does not match the keys for {name!r} (fingerprint "
            f"{key_fingerprint(record)}): the control plane may be impersonating one of you; "
            "do not approve tasks with it until you find out why"
        )
    with client_errors():
        home.pin_member(name, {**record, "verified": True})
    emit(
        _view(name, {**record, "verified": True}, me, my_keys),
        as_json=as_json,
        title=f"Member {name} verified",
    )
