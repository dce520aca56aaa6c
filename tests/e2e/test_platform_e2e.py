"""The member's path, over real HTTP with real executor processes, and the attacks on it.

alice provides the function and creates the task; bank and shop hold data; eve is a member who is
not part of the task.
"""

from __future__ import annotations

import uuid

import pytest

from teeflow.client import ApiError, Client, ClientError
from teeflow.crypto import canonical_json

from .conftest import MemberFactory, scan_for


def _csv(rows: list[tuple[str, int]], marker: str) -> bytes:
    lines = ["id,amount"] + [f"{i},{a}" for i, a in rows]
    lines.append(f"{marker},1")  # a unique canary row only this party holds
    return ("\n".join(lines) + "\n").encode()


def _run_join_sum(
    member: MemberFactory, markers: list[bytes]
) -> tuple[Client, Client, Client, dict]:
    alice, bank, shop = member("alice"), member("bank"), member("shop")
    bank_marker, shop_marker = f"BANKCANARY{uuid.uuid4().hex}", f"SHOPCANARY{uuid.uuid4().hex}"
    markers += [bank_marker.encode(), shop_marker.encode()]
    bank_ds = bank.upload_dataset(
        _csv([("u1", 10), ("u2", 20), ("u3", 30)], bank_marker), name="bank.csv", kind="table"
    )
    shop_ds = shop.upload_dataset(
        _csv([("u2", 5), ("u3", 7), ("u9", 1)], shop_marker), name="shop.csv", kind="table"
    )
    task = alice.propose(
        "private-join-sum",
        inputs={"bank": bank_ds["id"], "shop": shop_ds["id"]},
        outputs={"result": {"recipients": ["alice", "bank"]}},
        disclosure={"progress": ["alice"], "errors": ["alice"]},
    )
    for client in (alice, bank, shop):
        client.approve(task["id"])
    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=120)
    return alice, bank, shop, done


def test_join_sum_reaches_only_its_recipients(member: MemberFactory) -> None:
    markers: list[bytes] = []
    alice, bank, shop, done = _run_join_sum(member, markers)

    assert done["status"] == "succeeded", done["failure_reason"]
    for client in (alice, bank):
        result = client.output(done["id"], "result")
        assert result == b"id,amount\nu2,25\nu3,37\n"
    with pytest.raises(ApiError) as denied:
        shop.output(done["id"], "result")
    assert denied.value.status == 403
    receipt = bank.receipt(done["id"])["body"]
    assert receipt["status"] == "succeeded" and receipt["simulated"] is True
    assert set(receipt["inputs"]) == {"bank", "shop"}


def test_non_participant_cannot_see_approve_run_or_download(member: MemberFactory) -> None:
    _, _, _, done = _run_join_sum(member, [])
    eve = member("eve")

    for attempt in (
        lambda: eve.task(done["id"]),
        lambda: eve.approve(done["id"]),
        lambda: eve.run(done["id"]),
        lambda: eve.output(done["id"], "result"),
    ):
        with pytest.raises(ApiError) as denied:
            attempt()
        assert denied.value.status == 404
    bank_dataset = done["contract"]["inputs"]["bank"]["dataset_id"]
    download = eve.http.get(f"/v1/datasets/{bank_dataset}/content")
    assert download.status_code == 403


def test_task_runs_only_after_every_approval(member: MemberFactory) -> None:
    alice, bank = member("alice"), member("bank")
    ds = bank.upload_dataset(b"id,amount\nx,1\n", name="one.csv", kind="table")
    task = alice.propose(
        "echo", inputs={"data": ds["id"]}, outputs={"data": {"recipients": ["alice"]}}
    )
    alice.approve(task["id"])

    with pytest.raises(ApiError) as early:
        alice.run(task["id"])

    assert early.value.status == 409 and "bank" in early.value.message


def test_plaintext_never_reaches_the_platform(member: MemberFactory, platform) -> None:
    markers: list[bytes] = []
    _, _, _, done = _run_join_sum(member, markers)
    assert done["status"] == "succeeded"
    # the output's plaintext rows are canaries too
    markers.append(b"u2,25")

    leaks = scan_for(platform.data_dir, markers)

    assert leaks == []


def test_audit_log_records_the_flow(member: MemberFactory) -> None:
    from teeflow.server.audit import verify_chain

    alice, _, _, done = _run_join_sum(member, [])
    events = alice.audit()

    verify_chain(events)
    actions = [e["action"] for e in events if e["subject"] == done["id"]]
    assert {"task.propose", "task.approve", "task.approved", "task.run", "task.succeeded"} <= set(
        actions
    )
    assert canonical_json(events[-1])  # exportable as canonical JSON


def test_attestation_policy_must_accept_the_enclave(member: MemberFactory) -> None:
    from teeflow.attestation import Policy

    bank = member("bank")
    strict = Client(bank.server, keys=bank.keys, home=bank.home, username="bank", policy=Policy())
    strict.http.headers["Authorization"] = bank.http.headers["Authorization"]

    with strict, pytest.raises(ClientError, match="SIMULATED"):
        strict.attest()


def test_late_rejection_is_refused_and_changes_nothing(member: MemberFactory) -> None:
    alice, bank = member("alice"), member("bank")
    ds = bank.upload_dataset(b"id,amount\ny,2\n", name="two.csv", kind="table")
    task = alice.propose(
        "echo", inputs={"data": ds["id"]}, outputs={"data": {"recipients": ["alice"]}}
    )
    alice.approve(task["id"])
    bank.approve(task["id"])

    with pytest.raises(ApiError) as late:
        alice.reject(task["id"], "changed my mind")

    assert late.value.status == 409
    after = alice.task(task["id"])
    assert after["status"] == "approved"
    assert after["approvals"] == {"alice": "approve", "bank": "approve"}
