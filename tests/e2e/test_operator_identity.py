"""The operator serves identities and enclave keys: with only its powers, it gains nothing.

Issue 11, table rows 1-3. Each test plays an operator who edits the control plane's SQLite
database and blob files directly and holds keys of its own; real control plane and executor
processes run underneath. Members' clients pin the keys of the members they deal with, accept
outputs only for contracts they signed or from enclave keys they attested, and the enclave binds
joint ownership to the owners' keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from teeflow.cli.main import app
from teeflow.client import Client, ClientError, MemberHome, MemberKeys
from teeflow.client._client import public_keys
from teeflow.client.keyring import Keyring
from teeflow.crypto import (
    DataKey,
    PrivateKey,
    SigningKey,
    b64e,
    hpke_seal,
    key_wrap_info,
    seal_bytes,
    sha256_hex,
)
from teeflow.enclave.contract import APPROVAL_DOMAIN, contract_hash
from teeflow.enclave.receipt import sign_receipt
from teeflow.enclave.run_state import sign_run_authorisation
from teeflow.server.audit import entry_hash
from teeflow.server.launcher import LocalPlatform

from .conftest import PASSWORD, MemberFactory, member_policy, operator_db, operator_write_output


def operator_keys() -> MemberKeys:
    return MemberKeys(SigningKey.generate(), PrivateKey.generate())


@contextmanager
def keys_swapped(platform: LocalPlatform, swaps: dict[str, MemberKeys]) -> Iterator[None]:
    """The ``users`` table serves the operator's keys for these members, then the real ones."""
    with operator_db(platform) as db:
        saved = {
            name: db.execute(
                "SELECT sign_pk, enc_pk FROM users WHERE username = ?", (name,)
            ).fetchone()
            for name in swaps
        }
        for name, keys in swaps.items():
            fake = public_keys(keys)
            db.execute(
                "UPDATE users SET sign_pk = ?, enc_pk = ? WHERE username = ?",
                (fake["sign_pk"], fake["enc_pk"], name),
            )
    try:
        yield
    finally:
        with operator_db(platform) as db:
            for name, (sign_pk, enc_pk) in saved.items():
                db.execute(
                    "UPDATE users SET sign_pk = ?, enc_pk = ? WHERE username = ?",
                    (sign_pk, enc_pk, name),
                )


def forge_approval(
    platform: LocalPlatform,
    task_id: str,
    name: str,
    keys: MemberKeys,
    chash: str,
    wrapped: dict[str, str] | None = None,
) -> None:
    signature = b64e(keys.signing_key.sign(APPROVAL_DOMAIN, chash.encode("ascii")))
    with operator_db(platform) as db:
        db.execute("DELETE FROM approvals WHERE task_id = ? AND username = ?", (task_id, name))
        db.execute(
            "INSERT INTO approvals (task_id, username, decision, signature, wrapped_keys,"
            " created_at) VALUES (?, ?, 'approve', ?, ?, CURRENT_TIMESTAMP)",
            (task_id, name, signature, json.dumps(wrapped or {})),
        )


def force_queue(
    platform: LocalPlatform, task_id: str, *, run_as: MemberKeys | None = None, chash: str = ""
) -> None:
    """Set the task queued; with ``run_as``, also store a run authorisation signed with those
    keys (the creator's, as the contract the operator forged names them)."""
    run = None
    if run_as is not None:
        run = sign_run_authorisation(
            chash, run_as.signing_key, issued_at=datetime.now(UTC), run_nonce="0" * 32
        )
    with operator_db(platform) as db:
        db.execute(
            "UPDATE tasks SET status = 'queued', run_authorisation = ? WHERE task_id = ?",
            (json.dumps(run) if run else None, task_id),
        )


def outputs_of(client: Client, task_id: str) -> list[Any]:
    listed: list[Any] = client.http.get(f"/v1/tasks/{task_id}/outputs").json()
    return listed


# -- row 1: a participant's keys swapped while another member proposes ------------------------


def test_swapped_recipient_keys_are_refused_by_review_and_the_enclave(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    data = alice.upload_dataset(b"alice's rows\n", name="a.csv", kind="other")
    earlier = alice.propose(
        "echo", inputs={"data": data["id"]}, outputs={"data": {"recipients": ["bank"]}}
    )
    alice.approve(earlier["id"])  # alice has dealt with bank: its keys are pinned (TOFU)
    (registered,) = [
        e for e in alice.audit() if e["action"] == "user.register" and e["subject"] == "bank"
    ]
    assert registered["details"]["fingerprint"] == bank.keys.fingerprint
    operator = operator_keys()

    with keys_swapped(platform, {"bank": operator}):
        task = alice.propose(
            "echo", inputs={"data": data["id"]}, outputs={"data": {"recipients": ["bank"]}}
        )
    chash = task["contract_hash"]
    assert task["contract"]["participants"]["bank"] == public_keys(operator)
    forge_approval(platform, task["id"], "bank", operator, chash)

    with pytest.raises(ClientError) as refused:
        alice.approve(task["id"])
    message = str(refused.value)
    assert "'bank'" in message and "sign_pk" in message and "enc_pk" in message
    assert bank.keys.fingerprint in message and operator.fingerprint in message
    assert "teeflow member verify bank" in message

    # The operator skips alice's approval: the enclave wants every participant's signature.
    force_queue(platform, task["id"])
    skipped = alice.wait(task["id"], timeout=60)
    assert skipped["status"] == "failed"
    assert "'alice' has not approved" in skipped["failure_reason"]
    assert outputs_of(alice, task["id"]) == []

    # It also swaps alice's keys into the contract and forges her approval: it holds no key
    # that alice wrapped for her data, so the enclave opens nothing.
    contract = dict(task["contract"])
    contract["participants"] = {
        **contract["participants"],
        "alice": public_keys(operator),
    }
    forged = contract_hash(contract)
    stand_in = b64e(
        hpke_seal(
            DataKey.generate().raw,
            PrivateKey.generate().public_key,
            info=key_wrap_info("input", forged, "data"),
        )
    )
    with operator_db(platform) as db:
        db.execute(
            "UPDATE tasks SET contract = ?, contract_hash = ? WHERE task_id = ?",
            (json.dumps(contract), forged, task["id"]),
        )
    forge_approval(platform, task["id"], "bank", operator, forged)
    forge_approval(platform, task["id"], "alice", operator, forged, {"data": stand_in})
    force_queue(platform, task["id"], run_as=operator, chash=forged)  # alice creates the task
    both = alice.wait(task["id"], timeout=60)
    assert both["status"] == "failed"
    assert "does not unwrap" in both["failure_reason"]
    assert outputs_of(alice, task["id"]) == []


# -- row 2: both joint owners' keys swapped, a third member uses the joint model -------------


def test_joint_model_is_refused_when_its_owners_keys_were_swapped(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    owner_a, owner_b, third = member("ownera"), member("ownerb"), member("third")
    a_rows = owner_a.upload_dataset(b"id,amount\nu1,5\nu2,6\n", name="a.csv", kind="table")
    b_rows = owner_b.upload_dataset(b"id,amount\nu2,1\nu3,9\n", name="b.csv", kind="table")
    produce = owner_a.propose(
        "private-join-sum",
        inputs={"a": a_rows["id"], "b": b_rows["id"]},
        outputs={"result": {"joint_owners": ["ownera", "ownerb"]}},
    )
    owner_a.approve(produce["id"])
    owner_b.approve(produce["id"])
    owner_a.run(produce["id"])
    produced = owner_a.wait(produce["id"], timeout=60)
    assert produced["status"] == "succeeded", produced["failure_reason"]
    (joint,) = outputs_of(owner_a, produce["id"])
    swaps = {"ownera": operator_keys(), "ownerb": operator_keys()}

    with keys_swapped(platform, swaps):
        use = third.propose(
            "echo",
            inputs={"joint": joint["dataset_id"]},
            outputs={"joint": {"recipients": ["third"]}},
        )
    for name, keys in swaps.items():
        forge_approval(platform, use["id"], name, keys, use["contract_hash"])
    third.approve(use["id"])  # third never dealt with the owners: nothing pinned to compare
    third.run(use["id"])
    done = third.wait(use["id"], timeout=60)

    assert done["status"] == "failed"
    assert "joint input 'joint'" in done["failure_reason"]
    assert "owner 'ownera'" in done["failure_reason"]
    assert outputs_of(third, use["id"]) == []


# -- row 3: after success, the contract's enclave key, receipt and output are rewritten -------


def cli(home: Path, *args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"TEEFLOW_HOME": str(home)})


CliMemberFactory = Callable[[str], tuple[Client, Path]]


@pytest.fixture
def cli_member(platform: LocalPlatform, tmp_path: Path) -> Iterator[CliMemberFactory]:
    """Members whose home the ``teeflow`` command can use: keyring, credentials, policy."""
    made: list[Client] = []

    def make(name: str) -> tuple[Client, Path]:
        home = tmp_path / f"home-{name}"
        keyring = Keyring(home)
        keyring.init(None)
        client = Client(platform.url, keys=keyring.load(None), home=MemberHome(home))
        made.append(client)
        client.register(name, PASSWORD)
        client.login(name, PASSWORD)
        client.home.save_policy(member_policy(platform).to_dict())
        return client, home

    yield make
    for client in made:
        client.close()


def rewrite_audit(platform: LocalPlatform, task_id: str, receipt: dict[str, Any], key: str) -> None:
    """Put the forged receipt into the task's audit entry and announce the operator's key in an
    executor registration, then recompute every hash from the first changed entry on."""
    with operator_db(platform) as db:
        rows = db.execute(
            "SELECT seq, action, subject, details FROM audit_log ORDER BY seq"
        ).fetchall()
        registrations = [seq for seq, action, _, _ in rows if action == "executor.register"]
        assert len(registrations) >= 2, "the fixture runs two executors with one enclave key"
        (finished,) = [s for s, a, subj, _ in rows if a == "task.succeeded" and subj == task_id]
        changed = {}
        details = json.loads(next(d for s, _, _, d in rows if s == registrations[-1]))
        details["public_keys"] = {**details["public_keys"], "ed25519": key}
        changed[registrations[-1]] = details
        details = json.loads(next(d for s, _, _, d in rows if s == finished))
        details["receipt"] = receipt
        changed[finished] = details
        for seq, value in changed.items():
            db.execute("UPDATE audit_log SET details = ? WHERE seq = ?", (json.dumps(value), seq))


def rechain_audit(platform: LocalPlatform, client: Client) -> None:
    events = client.audit()
    prev = events[0]["prev_hash"]
    with operator_db(platform) as db:
        for event in events:
            digest = entry_hash(prev, event)
            db.execute(
                "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?",
                (prev, digest, event["seq"]),
            )
            prev = digest


def forge_success(platform: LocalPlatform, recv: Client, task_id: str) -> None:
    """The operator rewrites a succeeded task: its contract names an enclave key of its own, a
    receipt signed with that key covers a new output wrapped to the recipient, and the audit log
    is rewritten to match, every hash recomputed."""
    enclave = SigningKey.generate()
    stored = recv.task(task_id)
    contract = json.loads(json.dumps(stored["contract"]))
    contract["executor"]["public_keys"]["ed25519"] = enclave.verify_key.b64()
    contract["executor"]["public_keys"]["x25519"] = PrivateKey.generate().public_key.b64()
    forged_hash = contract_hash(contract)
    key = DataKey.generate()
    ciphertext = seal_bytes(b"operator's rows\n", key)
    wrapped = b64e(
        hpke_seal(
            key.raw,
            recv.keys.public_key,
            info=key_wrap_info("output", forged_hash, "data"),
        )
    )
    body = dict(stored["receipt"]["body"])
    body["contract_hash"] = forged_hash
    body["outputs"] = {
        "data": {
            **body["outputs"]["data"],
            "ciphertext_sha256": sha256_hex(ciphertext),
            "size": len(ciphertext),
        }
    }
    receipt = sign_receipt(body, enclave)
    operator_write_output(platform, task_id, "data", ciphertext)
    with operator_db(platform) as db:
        db.execute(
            "UPDATE tasks SET contract = ?, contract_hash = ?, receipt = ? WHERE task_id = ?",
            (json.dumps(contract), forged_hash, json.dumps(receipt), task_id),
        )
        db.execute(
            "UPDATE outputs SET ciphertext_sha256 = ?, size = ?, wrapped_keys = ?"
            " WHERE task_id = ? AND slot = 'data'",
            (sha256_hex(ciphertext), len(ciphertext), json.dumps({"recv": wrapped}), task_id),
        )
    rewrite_audit(platform, task_id, receipt, enclave.verify_key.b64())
    rechain_audit(platform, recv)


def test_forged_receipt_and_output_are_refused_by_output_receipt_and_audit(
    member: MemberFactory, platform: LocalPlatform, cli_member: CliMemberFactory, tmp_path: Path
) -> None:
    owner = member("dataco")
    recv, home = cli_member("recv")
    dataset = owner.upload_dataset(b"genuine rows\n", name="d.csv", kind="other")
    task = recv.propose(
        "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["recv"]}}
    )
    shown = cli(home, "task", "show", task["id"])
    assert "keys UNVERIFIED" in next(
        line for line in shown.stdout.splitlines() if "dataco:" in line
    )
    recv.approve(task["id"])
    owner.approve(task["id"])
    recv.run(task["id"])
    assert recv.wait(task["id"], timeout=60)["status"] == "succeeded"
    assert recv.output(task["id"], "data") == b"genuine rows\n"
    first = cli(home, "audit", "verify")
    assert first.exit_code == 0, first.stderr

    forge_success(platform, recv, task["id"])

    with pytest.raises(ClientError) as output_refused:
        recv.output(task["id"], "data")
    with pytest.raises(ClientError) as receipt_refused:
        recv.receipt(task["id"])
    for refused in (output_refused, receipt_refused):
        assert "you approved" in str(refused.value)
    out = str(tmp_path / "out.csv")
    commands = [
        ("task", "output", task["id"], "data", "--out", out),
        ("task", "receipt", task["id"]),
    ]
    for args in commands:
        result = cli(home, *args)
        assert result.exit_code != 0 and "you approved" in result.stderr, result.stderr
    rewritten = cli(home, "audit", "verify")
    assert rewritten.exit_code != 0
    assert "rewritten" in rewritten.stderr, rewritten.stderr

    assert not (tmp_path / "out.csv").exists()
    # A member who never approved this task and never verified the log before.
    _, auditor_home = cli_member("auditor")
    fresh = cli(auditor_home, "audit", "verify")
    (forged_entry,) = [
        e["seq"]
        for e in recv.audit()
        if e["action"] == "task.succeeded" and e["subject"] == task["id"]
    ]
    assert fresh.exit_code != 0
    assert f"audit entry {forged_entry}: " in fresh.stderr, fresh.stderr  # the genuine ones pass
    assert "not attested" in fresh.stderr, fresh.stderr


def test_member_commands_pin_and_verify_the_keys_the_server_shows(
    member: MemberFactory, cli_member: CliMemberFactory
) -> None:
    peer = member("peer")
    _, home = cli_member("viewer")
    wrong = operator_keys().fingerprint

    shown = cli(home, "member", "show", "peer", "--json")
    refused = cli(home, "member", "verify", "peer", "--fingerprint", wrong)
    replaced = cli(
        home, "member", "verify", "peer", "--replace", "--fingerprint", peer.keys.fingerprint
    )
    listed = cli(home, "member", "list", "--json")

    assert shown.exit_code == 0 and "trust on first use" in shown.stderr, shown.stderr
    assert json.loads(shown.stdout)["fingerprint"] == peer.keys.fingerprint
    assert refused.exit_code == 1 and "does not match the keys for 'peer'" in refused.stderr
    assert replaced.exit_code == 0, replaced.stderr
    assert json.loads(listed.stdout)[0]["verified"] is True
