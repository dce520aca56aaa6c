"""client/_trust.py: which receipts a member believes, from what its home recorded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from teeflow.client import ClientError, MemberHome
from teeflow.client._trust import check_trusted_contract

ENCLAVE = {"ed25519": "E" * 43 + "=", "x25519": "X" * 43 + "="}
OPERATOR = {"ed25519": "O" * 43 + "=", "x25519": "X" * 43 + "="}


def contract(keys: dict[str, str]) -> dict[str, Any]:
    return {"executor": {"tee": "sim", "public_keys": keys}}


def approved_home(tmp_path: Path) -> MemberHome:
    home = MemberHome(tmp_path)
    home.record_approval(task_id="t1", contract_hash="a" * 64, enclave_keys=ENCLAVE, at="now")
    return home


def test_the_contract_the_member_approved_is_believed(tmp_path: Path) -> None:
    check_trusted_contract(approved_home(tmp_path), "t1", "a" * 64, contract(ENCLAVE))


def test_another_contract_for_a_task_the_member_approved_is_refused(tmp_path: Path) -> None:
    home = approved_home(tmp_path)
    home.record_attested_enclave(public_keys=OPERATOR, tee="sim", measurement="m", at="now")

    with pytest.raises(ClientError, match="is not the one you approved"):
        check_trusted_contract(home, "t1", "b" * 64, contract(OPERATOR))


def test_a_task_not_approved_needs_an_attested_enclave_key(tmp_path: Path) -> None:
    home = approved_home(tmp_path)

    with pytest.raises(ClientError, match="not attested under your policy"):
        check_trusted_contract(home, "t2", "c" * 64, contract(ENCLAVE))
    home.record_attested_enclave(public_keys=ENCLAVE, tee="sim", measurement="m", at="now")
    check_trusted_contract(home, "t2", "c" * 64, contract(ENCLAVE))


def test_an_attested_signing_key_with_another_encryption_key_is_refused(tmp_path: Path) -> None:
    home = MemberHome(tmp_path)
    home.record_attested_enclave(public_keys=ENCLAVE, tee="sim", measurement="m", at="now")
    mixed = {**ENCLAVE, "x25519": "Y" * 43 + "="}

    with pytest.raises(ClientError, match="not attested"):
        check_trusted_contract(home, "t3", "d" * 64, contract(mixed))
