"""``teeflow member list | show | verify`` on a home with pinned members (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner, Result

from teeflow.cli.main import app
from teeflow.client import MemberHome, MemberKeys
from teeflow.client._client import public_keys
from teeflow.client._pins import format_digits, key_fingerprint, pin_record, safety_number
from teeflow.client.keyring import Keyring
from teeflow.crypto import PrivateKey, SigningKey

BANK = public_keys(MemberKeys(SigningKey.generate(), PrivateKey.generate()))


def alice_home(tmp_path: Path) -> tuple[MemberHome, dict[str, str]]:
    """alice's home: plain keyring, signed in (to an unreachable server), bank pinned."""
    home = MemberHome(tmp_path / "alice")
    public = Keyring(home.root).init(None)
    home.save_credentials(server="http://127.0.0.1:9", username="alice", token="tf_unused")
    home.pin_member("bank", pin_record(BANK, source="task t1"))
    return home, {"sign_pk": public.verify_key.b64(), "enc_pk": public.public_key.b64()}


def teeflow(home: MemberHome, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"TEEFLOW_HOME": str(home.root)})


def test_show_gives_the_safety_number_both_members_compute(tmp_path: Path) -> None:
    home, alice = alice_home(tmp_path)

    result = teeflow(home, "member", "show", "bank", "--json")

    assert result.exit_code == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["safety_number"] == format_digits(safety_number("bank", BANK, "alice", alice))
    assert shown["fingerprint"] == key_fingerprint(BANK) and shown["verified"] is False
    assert "not verified" in result.stderr


def test_verify_with_the_right_safety_number_marks_the_member_verified(tmp_path: Path) -> None:
    home, alice = alice_home(tmp_path)
    read_by_bank = format_digits(safety_number("bank", BANK, "alice", alice))

    result = teeflow(home, "member", "verify", "bank", "--safety-number", read_by_bank)
    listed = teeflow(home, "member", "list", "--json")

    assert result.exit_code == 0, result.stderr
    pinned = home.pinned_member("bank")
    assert pinned is not None and pinned["verified"] is True
    assert json.loads(listed.stdout) == [
        {
            "member": "bank",
            "verified": True,
            "fingerprint": key_fingerprint(BANK),
            "pinned_from": "task t1",
        }
    ]


def test_verify_with_the_member_fingerprint(tmp_path: Path) -> None:
    home, _ = alice_home(tmp_path)

    result = teeflow(home, "member", "verify", "bank", "--fingerprint", key_fingerprint(BANK))

    assert result.exit_code == 0, result.stderr
    pinned = home.pinned_member("bank")
    assert pinned is not None and pinned["verified"] is True


def test_verify_with_a_wrong_number_fails_and_leaves_the_member_unverified(
    tmp_path: Path,
) -> None:
    home, alice = alice_home(tmp_path)
    other = public_keys(MemberKeys(SigningKey.generate(), PrivateKey.generate()))
    wrong = safety_number("bank", other, "alice", alice)

    result = teeflow(home, "member", "verify", "bank", "--safety-number", wrong)

    assert result.exit_code == 1
    assert "does not match the keys for 'bank'" in result.stderr
    pinned = home.pinned_member("bank")
    assert pinned is not None and pinned["verified"] is False


def test_verify_needs_exactly_one_number(tmp_path: Path) -> None:
    home, _ = alice_home(tmp_path)

    result = teeflow(home, "member", "verify", "bank")

    assert result.exit_code == 1
    assert "exactly one of --safety-number or --fingerprint" in result.stderr
