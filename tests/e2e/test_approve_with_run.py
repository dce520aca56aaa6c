"""The creator's approval carries its run authorisation (docs/run-authorisation.md): the task
is queued as the last approval arrives, with no `run` call; the enclave's checks stay the same.

The operator plays with plain SQLite edits against a real control plane and sim executors.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from teeflow.attestation import Claims, Evidence, Policy, verify
from teeflow.client import ApiError, Client, ClientError
from teeflow.crypto import b64e
from teeflow.enclave.contract import APPROVAL_DOMAIN
from teeflow.enclave.run_state import sign_run_authorisation
from teeflow.server.launcher import LocalPlatform

from .conftest import (
    MemberFactory,
    echo_task,
    member_policy,
    operator_db,
    refused_by_enclave,
    same_member,
)


def _clocked(client: Client, platform: LocalPlatform, at: datetime) -> Client:
    """The same member on a machine whose clock reads ``at`` (its evidence check, which would
    refuse a quote issued after ``at``, reads the true time)."""

    def verifier(evidence: Evidence, policy: Policy, *, now: datetime) -> Claims:
        return verify(evidence, policy, now=datetime.now(UTC))

    return same_member(client, policy=member_policy(platform), clock=lambda: at, verifier=verifier)


def test_the_creators_approval_with_run_queues_the_task_as_the_owner_approves(
    member: MemberFactory,
) -> None:
    creator, owner = member("awr-creator"), member("awr-owner")
    task_id = echo_task(creator, owner, b"id,amount\na1,1\n")

    assert creator.approve(task_id, run=True)["status"] == "proposed"
    queued = owner.approve(task_id)
    done = creator.wait(task_id, timeout=120)

    assert queued["status"] == "queued"
    assert queued["run_authorisation"]["body"]["contract_hash"] == queued["contract_hash"]
    assert done["status"] == "succeeded"
    assert done["receipt"]["body"]["run"]["authorised_at"]  # the enclave checked it
    assert owner.output(task_id, "data") == b"id,amount\na1,1\n"
    actions = [e["action"] for e in creator.audit() if e["subject"] == task_id]
    assert "task.queued" in actions and "task.run" not in actions


def test_the_creator_approving_last_with_run_queues_the_task_at_once(
    member: MemberFactory,
) -> None:
    creator, owner = member("awr-creator"), member("awr-owner")
    task_id = echo_task(creator, owner, b"id,amount\na2,2\n")

    assert owner.approve(task_id)["status"] == "proposed"
    queued = creator.approve(task_id, run=True)

    assert queued["status"] == "queued"
    assert creator.wait(task_id, timeout=120)["status"] == "succeeded"


def test_approvals_after_the_start_window_leave_the_task_for_the_creator_to_run_again(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    creator, owner = member("awr-creator"), member("awr-owner")
    task_id = echo_task(creator, owner, b"id,amount\na3,3\n")
    # The creator approved with run an hour ago, with a one-minute start window.
    with _clocked(creator, platform, datetime.now(UTC) - timedelta(hours=1)) as earlier:
        earlier.approve(task_id, run=True, start_within_s=60)

    approved = owner.approve(task_id)
    assert approved["status"] == "approved"  # not queued: no enclave would start it
    creator.run(task_id)
    assert creator.wait(task_id, timeout=120)["status"] == "succeeded"


def test_only_the_creator_may_approve_with_run(member: MemberFactory) -> None:
    creator, owner = member("awr-creator"), member("awr-owner")
    task_id = echo_task(creator, owner, b"id,amount\na4,4\n")
    task = owner.task(task_id)

    with pytest.raises(ClientError, match="only the task's creator"):
        owner.approve(task_id, run=True)
    # The owner's client sends it anyway, signed with the owner's own key.
    authorisation = sign_run_authorisation(
        task["contract_hash"],
        owner.keys.signing_key,
        issued_at=datetime.now(UTC),
        run_nonce="ab" * 16,
    )
    with pytest.raises(ApiError) as refused:
        owner._call(
            "POST",
            f"/v1/tasks/{task_id}/approve",
            json=_approval(owner, task, authorisation, data="AAAA"),
        )

    assert refused.value.status == 403
    assert owner.task(task_id)["approvals"] == {}


def _approval(
    client: Client, task: dict[str, Any], run: dict[str, Any], **wrapped_keys: str
) -> dict[str, Any]:
    """An approval body signed by ``client``, carrying ``run`` (the route checks that a key is
    there for each of the member's inputs, the enclave that it opens)."""
    signature = client.keys.signing_key.sign(APPROVAL_DOMAIN, task["contract_hash"].encode())
    return {"signature": b64e(signature), "wrapped_keys": wrapped_keys, "run": run}


def test_a_run_authorisation_for_another_contract_in_an_approval_is_refused(
    member: MemberFactory,
) -> None:
    creator, owner = member("awr-creator"), member("awr-owner")
    task = creator.task(echo_task(creator, owner, b"id,amount\na5,5\n"))
    other = creator.task(echo_task(creator, owner, b"id,amount\na6,6\n"))
    foreign = sign_run_authorisation(
        other["contract_hash"],
        creator.keys.signing_key,
        issued_at=datetime.now(UTC),
        run_nonce="cd" * 16,
    )

    with pytest.raises(ApiError, match="run authorisation is for another contract") as refused:
        creator._call(
            "POST", f"/v1/tasks/{task['id']}/approve", json=_approval(creator, task, foreign)
        )

    assert refused.value.status == 422
    after = creator.task(task["id"])
    assert after["approvals"] == {} and after["run_authorisation"] is None


def test_the_operator_queueing_a_task_approved_without_run_is_refused_by_the_enclave(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    creator, owner = member("awr-creator"), member("awr-owner")
    task_id = echo_task(creator, owner, b"id,amount\na7,7\n")
    creator.approve(task_id)  # without run
    assert owner.approve(task_id)["status"] == "approved"

    with operator_db(platform) as db:
        db.execute("UPDATE tasks SET status = 'queued' WHERE task_id = ?", (task_id,))

    assert "creator has not authorised this run" in refused_by_enclave(creator, task_id)


def test_the_operator_moving_one_approvals_run_authorisation_to_another_task_is_refused(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    creator, owner = member("awr-creator"), member("awr-owner")
    carried = echo_task(creator, owner, b"id,amount\na8,8\n")
    creator.approve(carried, run=True)  # its run authorisation waits in the row for the owner
    task_id = echo_task(creator, owner, b"id,amount\na9,9\n")
    creator.approve(task_id)
    owner.approve(task_id)

    with operator_db(platform) as db:
        db.execute(
            "UPDATE tasks SET run_authorisation = "
            "(SELECT run_authorisation FROM tasks WHERE task_id = ?), status = 'queued' "
            "WHERE task_id = ?",
            (carried, task_id),
        )

    assert "run authorisation is for another contract" in refused_by_enclave(creator, task_id)
