"""client/_pins.py: trust on first use, a refused key change that says what changed, and a
safety number that is the same on both members' machines."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from teeflow.client import ClientError, MemberHome, MemberKeys
from teeflow.client._client import public_keys
from teeflow.client._pins import (
    check_participants,
    format_digits,
    identity_number,
    key_fingerprint,
    parse_digits,
    participant_trust,
    safety_number,
)
from teeflow.crypto import PrivateKey, SigningKey, canonical_json


def keys() -> dict[str, str]:
    return public_keys(MemberKeys(SigningKey.generate(), PrivateKey.generate()))


def contract(task_id: str, **participants: dict[str, str]) -> dict[str, Any]:
    return {"task_id": task_id, "participants": participants}


ALICE, BANK = keys(), keys()


def test_first_contract_pins_every_other_participant(tmp_path: Path) -> None:
    home = MemberHome(tmp_path)

    check_participants(contract("t1", alice=ALICE, bank=BANK), me="alice", home=home)

    assert list(home.pinned_members()) == ["bank"]
    pinned = home.pinned_member("bank")
    assert pinned is not None
    assert {k: pinned[k] for k in ("sign_pk", "enc_pk")} == BANK
    assert pinned["verified"] is False and pinned["source"] == "task t1"


def test_the_same_keys_pass_again(tmp_path: Path) -> None:
    home = MemberHome(tmp_path)
    check_participants(contract("t1", alice=ALICE, bank=BANK), me="alice", home=home)

    check_participants(contract("t2", alice=ALICE, bank=BANK), me="alice", home=home)

    pinned = home.pinned_member("bank")
    assert pinned is not None and pinned["source"] == "task t1"


@pytest.mark.parametrize("changed", [("sign_pk",), ("enc_pk",), ("sign_pk", "enc_pk")])
def test_other_keys_for_a_pinned_member_are_refused_saying_what_changed(
    tmp_path: Path, changed: tuple[str, ...]
) -> None:
    home = MemberHome(tmp_path)
    check_participants(contract("t1", alice=ALICE, bank=BANK), me="alice", home=home)
    fake = keys()
    shown = {field: fake[field] if field in changed else BANK[field] for field in BANK}

    with pytest.raises(ClientError) as refused:
        check_participants(contract("t2", alice=ALICE, bank=shown), me="alice", home=home)

    message = str(refused.value)
    assert "'bank'" in message and f"{', '.join(changed)} changed" in message
    assert key_fingerprint(BANK) in message and key_fingerprint(shown) in message
    assert "teeflow member verify bank --replace --safety-number" in message
    pinned = home.pinned_member("bank")
    assert pinned is not None and pinned["sign_pk"] == BANK["sign_pk"]  # the pin is kept


def test_a_refused_contract_pins_none_of_its_new_members(tmp_path: Path) -> None:
    home = MemberHome(tmp_path)
    check_participants(contract("t1", alice=ALICE, bank=BANK), me="alice", home=home)

    with pytest.raises(ClientError):
        check_participants(
            contract("t2", alice=ALICE, bank=keys(), shop=keys()), me="alice", home=home
        )

    assert home.pinned_member("shop") is None


def test_task_show_marks(tmp_path: Path) -> None:
    home = MemberHome(tmp_path)
    check_participants(contract("t1", alice=ALICE, bank=BANK), me="alice", home=home)
    pinned = home.pinned_member("bank")
    assert pinned is not None
    home.pin_member("shop", {**keys(), "verified": True})
    shop = home.pinned_member("shop")
    assert shop is not None
    shop_keys = {"sign_pk": shop["sign_pk"], "enc_pk": shop["enc_pk"]}

    marks = participant_trust(
        contract("t2", alice=ALICE, bank=BANK, shop=shop_keys, eve=keys(), dan=keys()),
        me="alice",
        home=home,
    )
    home.pin_member("dan", {**keys(), "verified": True})
    changed = participant_trust(contract("t3", dan=keys()), me="alice", home=home)

    assert marks == {
        "alice": "you",
        "bank": "unverified",
        "shop": "verified",
        "eve": "new",
        "dan": "new",
    }
    assert changed == {"dan": "KEYS CHANGED"}


def _spec_identity(name: str, member: dict[str, str]) -> str:
    """The identity number exactly as the _pins module docstring specifies it."""
    bundle = canonical_json({"enc_pk": member["enc_pk"], "sign_pk": member["sign_pk"]})
    digest = hashlib.sha512(b"teeflow/v1/safety-number\x00" + bundle + name.encode()).digest()
    for _ in range(5200):
        digest = hashlib.sha512(digest + bundle).digest()
    return "".join(
        str(int.from_bytes(digest[i : i + 5], "big") % 100_000).zfill(5) for i in range(0, 30, 5)
    )


def test_identity_number_follows_the_documented_construction() -> None:
    assert identity_number("bank", BANK) == _spec_identity("bank", BANK)
    assert len(identity_number("bank", BANK)) == 30


def test_safety_number_is_symmetric_and_stable() -> None:
    seen_by_alice = safety_number("alice", ALICE, "bank", BANK)
    seen_by_bank = safety_number("bank", BANK, "alice", ALICE)

    assert seen_by_alice == seen_by_bank == safety_number("alice", ALICE, "bank", BANK)
    assert len(seen_by_alice) == 60 and seen_by_alice.isdigit()
    assert seen_by_alice == "".join(
        sorted((_spec_identity("alice", ALICE), _spec_identity("bank", BANK)))
    )


@pytest.mark.parametrize("what", ["sign_pk", "enc_pk", "name"])
def test_safety_number_changes_with_any_key_or_name(what: str) -> None:
    other = dict(BANK)
    name = "bank"
    if what == "name":
        name = "bank2"
    else:
        other[what] = keys()[what]

    assert safety_number("alice", ALICE, name, other) != safety_number("alice", ALICE, "bank", BANK)


def test_digits_are_grouped_and_parsed_back() -> None:
    number = safety_number("alice", ALICE, "bank", BANK)
    shown = format_digits(number)

    assert len(shown.split()) == 12 and all(len(group) == 5 for group in shown.split())
    assert parse_digits(shown) == number
    with pytest.raises(ValueError, match="only digits"):
        parse_digits("12345 abcde")


def test_a_damaged_pin_file_is_refused_not_ignored(tmp_path: Path) -> None:
    home = MemberHome(tmp_path)
    home.members_path.write_text("[not, json")

    with pytest.raises(ClientError, match="restore it from a backup"):
        check_participants(contract("t1", alice=ALICE, bank=BANK), me="alice", home=home)
