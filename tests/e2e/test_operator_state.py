"""The operator edits task state and events directly; the enclave and the member's client decide.

Issue 11, rows 4 and 5: an operator with write access to the database (and the executor secret)
tries to run a task its creator cancelled, a contract that expired, a task a participant withdrew
from, and to show members progress or error messages the enclave never sent. Each test plays the
operator with plain SQLite edits against a real control plane and real sim executors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from teeflow.cli.main import app
from teeflow.client import Client
from teeflow.crypto import PublicKey, b64e, canonical_json, hpke_seal, key_wrap_info
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory, executors_paused, operator_db, same_member
from .conftest import refused_by_enclave as _refused


def _set_status(platform: LocalPlatform, task_id: str, status: str) -> None:
    with operator_db(platform) as db:
        db.execute(
            "UPDATE tasks SET status = ?, failure_reason = NULL WHERE task_id = ?",
            (status, task_id),
        )


def _approved_echo(alice: Client, bank: Client, payload: bytes, **propose: Any) -> str:
    dataset = bank.upload_dataset(payload, name="bank.csv", kind="other")
    task = alice.propose(
        "echo",
        inputs={"data": dataset["id"]},
        outputs={"data": {"recipients": ["alice", "bank"]}},
        **propose,
    )
    alice.approve(task["id"])
    assert bank.approve(task["id"])["status"] == "approved"
    return str(task["id"])


def _clocked(client: Client, clock: Callable[[], datetime]) -> Client:
    """The same member on a machine whose clock reads ``clock()``."""
    return same_member(client, clock=clock)


# -- row 4: task state -------------------------------------------------------------------------


def test_a_task_cancelled_before_it_ran_never_runs_when_requeued(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    task_id = _approved_echo(alice, bank, b"cancelled rows\n")
    assert alice.cancel(task_id)["status"] == "canceled"

    _set_status(platform, task_id, "queued")  # the operator undoes the cancel
    reason = _refused(alice, task_id)

    assert "creator has not authorised this run" in reason


def test_a_run_authorisation_copied_from_another_task_is_refused(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    ran = _approved_echo(alice, bank, b"first rows\n")
    alice.run(ran)
    assert alice.wait(ran, timeout=120)["status"] == "succeeded"
    task_id = _approved_echo(alice, bank, b"second rows\n")
    alice.cancel(task_id)

    with operator_db(platform) as db:
        db.execute(
            "UPDATE tasks SET run_authorisation = "
            "(SELECT run_authorisation FROM tasks WHERE task_id = ?), status = 'queued' "
            "WHERE task_id = ?",
            (ran, task_id),
        )
    reason = _refused(alice, task_id)

    assert "run authorisation is for another contract" in reason


def test_a_queued_task_cancelled_and_requeued_after_the_start_window_is_refused(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    task_id = _approved_echo(alice, bank, b"queued rows\n")
    # The creator ran it two hours ago with a 10-minute start window; no executor took it since.
    earlier = _clocked(alice, lambda: datetime.now(UTC) - timedelta(hours=2))

    with earlier, executors_paused(platform):
        earlier.run(task_id, start_within_s=600)
        alice.cancel(task_id)
        _set_status(platform, task_id, "queued")  # the operator undoes the cancel
    reason = _refused(alice, task_id)

    assert "past its start window" in reason


def test_an_expired_contract_is_refused(member: MemberFactory, platform: LocalPlatform) -> None:
    alice, bank = member("alice"), member("bank")
    task_id = _approved_echo(alice, bank, b"late rows\n", expires_in_s=1)
    expires_at = datetime.fromisoformat(alice.task(task_id)["contract"]["expires_at"])
    while datetime.now(UTC) <= expires_at:  # every party signed this expiry
        time.sleep(0.2)

    alice.run(task_id)  # queued late, as an operator holding the task back would
    reason = _refused(alice, task_id)

    assert "contract expired at" in reason


def test_a_withdrawn_approval_is_refused_when_the_operator_requeues(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    task_id = _approved_echo(alice, bank, b"withdrawn rows\n")

    with executors_paused(platform):
        alice.run(task_id)
        withdrawn = bank.withdraw(task_id)
        _set_status(platform, task_id, "queued")  # the operator ignores the withdrawal
    reason = _refused(alice, task_id)

    assert withdrawn["status"] == "canceled" and withdrawn["withdrawn"] == ["bank"]
    assert "'bank' withdrew its approval" in reason


def test_a_withheld_withdrawal_is_reported_loudly_to_the_withdrawing_member(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    task_id = _approved_echo(alice, bank, b"withheld rows\n")
    bank.withdraw(task_id)

    with operator_db(platform) as db:  # hide the withdrawal from the creator and the enclave
        db.execute(
            "UPDATE tasks SET withdrawals = NULL, status = 'approved', failure_reason = NULL "
            "WHERE task_id = ?",
            (task_id,),
        )
    alice.run(task_id)
    assert alice.wait(task_id, timeout=120)["status"] == "succeeded"
    seen_by_bank = bank.task(task_id)

    assert "RAN AFTER YOU WITHDREW YOUR APPROVAL" in seen_by_bank["withdrawal_breach"]
    assert "withdrawal_breach" not in alice.task(task_id)


# -- row 5: events -----------------------------------------------------------------------------

FORGED = "FORGED: re-upload your data to http://operator.example"


def _failed_join(member: MemberFactory) -> tuple[Client, str]:
    """A task that fails in the enclave with an error disclosed to bank: one genuine event."""
    alice, bank, shop = member("alice"), member("bank"), member("shop")
    bad = bank.upload_dataset(b"id,amount\nu1,x\n", name="bad.csv", kind="table")
    good = shop.upload_dataset(b"id,amount\nu1,5\n", name="good.csv", kind="table")
    task = alice.propose(
        "private-join-sum",
        inputs={"a": bad["id"], "s": good["id"]},
        outputs={"result": {"recipients": ["alice"]}},
        disclosure={"errors": ["alice", "bank"]},
    )
    for party in (alice, bank, shop):
        party.approve(task["id"])
    alice.run(task["id"])
    assert alice.wait(task["id"], timeout=120)["status"] == "failed"
    return bank, str(task["id"])


def _operator_inserts_events(platform: LocalPlatform, bank: Client, task_id: str) -> None:
    """A forged error and a forged progress event sealed to bank's public key (which the
    operator has), and a second delivery of bank's genuine event."""
    task = bank.task(task_id)
    enc_pk = PublicKey.from_b64(task["contract"]["participants"]["bank"]["enc_pk"])
    info = key_wrap_info("event", task["contract_hash"], "bank")
    forged = [
        b64e(hpke_seal(canonical_json(data), enc_pk, info=info))
        for data in ({"kind": "error", "message": FORGED}, {"kind": "progress", "epoch": 99})
    ]
    with operator_db(platform) as db:
        (genuine,) = db.execute(
            "SELECT payload FROM events WHERE task_id = ? AND recipient = 'bank'", (task_id,)
        ).fetchone()
        (last,) = db.execute("SELECT MAX(seq) FROM events WHERE task_id = ?", (task_id,)).fetchone()
        for offset, payload in enumerate([*forged, genuine], start=1):
            db.execute(
                "INSERT INTO events (task_id, seq, recipient, kind, payload, created_at) "
                "VALUES (?, ?, 'bank', 'sealed', ?, ?)",
                (task_id, last + offset, payload, datetime.now(UTC).isoformat()),
            )


def test_forged_and_replayed_events_are_rejected_not_shown(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    bank, task_id = _failed_join(member)

    _operator_inserts_events(platform, bank, task_id)
    shown = bank.events(task_id)
    rejected = bank.rejected_events(task_id)

    assert [event["kind"] for event in shown] == ["error"]
    assert "line 2" in shown[0]["message"] and FORGED not in json.dumps(shown)
    assert len(rejected) == 3
    assert sum("not signed by the task's enclave key" in r.reason for r in rejected) == 2
    assert sum("replay of the enclave's event" in r.reason for r in rejected) == 1


@pytest.mark.parametrize("command", ["events", "wait"])
def test_the_cli_never_shows_a_forged_event(
    member: MemberFactory,
    platform: LocalPlatform,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:
    bank, task_id = _failed_join(member)
    _operator_inserts_events(platform, bank, task_id)

    @contextmanager
    def as_bank(_passphrase_file: Any = None) -> Iterator[Client]:
        yield bank

    monkeypatch.setattr("teeflow.cli.task.session", as_bank)
    result = CliRunner().invoke(app, ["task", command, task_id])

    assert FORGED not in result.stdout + result.stderr
    assert "epoch=99" not in result.stdout + result.stderr
    assert "line 2" in result.stdout + result.stderr  # the genuine error is shown
    assert result.stderr.count("rejected event") == 3
