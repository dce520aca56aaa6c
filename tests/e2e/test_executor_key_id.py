"""The executor's registration record carries its key id (measurement, epoch), signed by the
enclave key its evidence binds; a member's attest shows it and catches an operator who altered
it in the database (enclave/key_id_claim.py)."""

from __future__ import annotations

import json

import pytest

from teeflow.attestation import sim_measurement
from teeflow.client import ClientError
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory, operator_db


def test_registration_shows_the_key_id_and_attest_checks_it(
    platform: LocalPlatform, member: MemberFactory
) -> None:
    alice = member("alice")
    info = alice._call("GET", "/v1/enclave")
    assert all(e["key_id"]["measurement"] == sim_measurement() for e in info["executors"])
    assert all(isinstance(e["key_id"]["epoch"], int) for e in info["executors"])
    registrations = [
        e for e in alice._call("GET", "/v1/audit") if e["action"] == "executor.register"
    ]
    assert registrations and all("key_id" in e["details"] for e in registrations)

    attested = alice.attest()

    # Sim executors hold the sealed identity of decision 0003: epoch 0, not from a key service.
    assert attested["key_id"] == {"measurement": sim_measurement(), "epoch": 0}


@pytest.mark.parametrize(
    ("alter", "error"),
    [
        ("json_set(key_id, '$.epoch', 7)", "not signed by its attested enclave key"),
        ("json_set(key_id, '$.measurement', '" + "ab" * 32 + "')", "not signed by its attested"),
        ("NULL", "names no key id"),
    ],
)
def test_an_altered_key_id_in_the_database_is_caught_by_the_member(
    platform: LocalPlatform, member: MemberFactory, alter: str, error: str
) -> None:
    bank = member("bank")
    with operator_db(platform) as db:
        saved = db.execute("SELECT executor_id, key_id FROM executors").fetchall()
        db.execute(f"UPDATE executors SET key_id = {alter}")
    try:
        with pytest.raises(ClientError, match=error):
            bank.attest()
    finally:
        with operator_db(platform) as db:
            db.executemany(
                "UPDATE executors SET key_id = ? WHERE executor_id = ?",
                [(key_id, executor_id) for executor_id, key_id in saved],
            )
    assert json.loads(saved[0][1])["epoch"] == bank.attest()["key_id"]["epoch"]
