"""What leaves the enclave (issue 15): owner policies, aggregation thresholds, DP budgets.

Each test runs against a real control plane and real sim executors. Where the attack is the
operator's, the test edits the database directly (as tests/e2e/test_attacks.py does) or approves
with a client that skips its own review (an owner whose software is old or subverted): the
enclave must refuse on its own, naming the policy rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from teeflow.client import Client, ClientError
from teeflow.crypto import PublicKey, b64e, hpke_seal, key_wrap_info
from teeflow.enclave.budget import budget_slot, sign_budget_statement
from teeflow.enclave.contract import APPROVAL_DOMAIN, contract_hash
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory
from .test_member_review import _cli, cli_victim  # noqa: F401 - a fixture the CLI test uses
from .test_operator_identity import force_queue, operator_db, outputs_of

TABLE = breast_cancer_hospitals()["hospital_a.csv"]
DP_ARGS = {"label_column": "malignant", "id_column": "patient_id", "epochs": 2}


def _unreviewed_approve(
    client: Client, task_id: str, extra: dict[str, str] | None = None
) -> dict[str, Any]:
    """Sign and wrap keys the way Client.approve does, without its review or its ledger."""
    contract = client.task(task_id)["contract"]
    chash = contract_hash(contract)
    enclave_pk = PublicKey.from_b64(contract["executor"]["public_keys"]["x25519"])
    wrapped = dict(extra or {})
    for slot, spec in contract["inputs"].items():
        key = (
            client.home.dataset_key(spec["dataset_id"])
            if spec["owners"] == [client.username]
            else None
        )
        if key is not None:
            info = key_wrap_info("input", chash, slot)
            wrapped[slot] = b64e(hpke_seal(key.raw, enclave_pk, info=info))
    signature = b64e(client.keys.signing_key.sign(APPROVAL_DOMAIN, chash.encode("ascii")))
    result: dict[str, Any] = client._call(
        "POST",
        f"/v1/tasks/{task_id}/approve",
        json={"signature": signature, "wrapped_keys": wrapped},
    )
    return result


# -- owner policies: functions and recipients ---------------------------------------------


def test_forbidden_function_is_refused_at_review_and_by_the_enclave(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    dataset = bank.upload_dataset(TABLE, name="bank.csv", kind="table")
    bank.set_policy(dataset["id"], functions=["tabular-train"])
    task = alice.propose(
        "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["alice"]}}
    )
    assert task["contract"]["inputs"]["data"]["policy"]["policy"]["functions"] == ["tabular-train"]

    with pytest.raises(ClientError, match="rule 'functions'"):
        bank.review(bank.task(task["id"]))
    _unreviewed_approve(alice, task["id"])  # alice's review refuses it too
    force_queue(platform, task["id"])  # the operator marks it approved; bank never signed
    done = alice.wait(task["id"], timeout=60)

    assert done["status"] == "failed"
    assert "rule 'functions'" in done["failure_reason"] and "'echo'" in done["failure_reason"]
    assert outputs_of(alice, task["id"]) == []


def test_forbidden_function_is_refused_even_with_the_owners_signature(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    dataset = bank.upload_dataset(TABLE, name="bank.csv", kind="table")
    bank.set_policy(dataset["id"], functions=["tabular-train"], raw_rows=False)
    task = alice.propose(
        "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["alice"]}}
    )

    _unreviewed_approve(alice, task["id"])
    _unreviewed_approve(bank, task["id"])  # the owner's client skipped its review
    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=60)

    assert done["status"] == "failed"
    assert "rule 'functions'" in done["failure_reason"]
    assert outputs_of(alice, task["id"]) == []


def test_forbidden_recipient_is_refused_at_review_and_by_the_enclave(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    dataset = bank.upload_dataset(TABLE, name="bank.csv", kind="table")
    bank.set_policy(dataset["id"], recipients=["bank"])
    task = alice.propose(
        "tabular-train",
        inputs={"data": dataset["id"]},
        arguments={"label_column": "malignant", "id_column": "patient_id", "epochs": 1},
        outputs={"metrics_public": {"recipients": ["alice", "bank"]}},
    )

    with pytest.raises(ClientError, match="rule 'recipients'"):
        bank.approve(task["id"])
    _unreviewed_approve(alice, task["id"])
    _unreviewed_approve(bank, task["id"])
    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=60)

    assert done["status"] == "failed"
    assert "rule 'recipients'" in done["failure_reason"] and "alice" in done["failure_reason"]
    assert outputs_of(alice, task["id"]) == []


def test_a_policy_stripped_from_the_contract_is_refused_by_the_owner(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    dataset = bank.upload_dataset(TABLE, name="bank.csv", kind="table")
    bank.set_policy(dataset["id"], functions=["tabular-train"])
    with operator_db(platform) as db:  # the operator drops the policy before anyone proposes
        (meta,) = db.execute(
            "SELECT meta FROM datasets WHERE dataset_id = ?", (dataset["id"],)
        ).fetchone()
        db.execute(
            "UPDATE datasets SET meta = ? WHERE dataset_id = ?",
            (
                json.dumps({k: v for k, v in json.loads(meta).items() if k != "policy"}),
                dataset["id"],
            ),
        )
    task = alice.propose(
        "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["alice"]}}
    )

    with pytest.raises(ClientError, match="another policy than the one you set"):
        bank.approve(task["id"])


# -- aggregation thresholds ---------------------------------------------------------------


def test_intersection_size_over_too_few_rows_is_withheld(member: MemberFactory) -> None:
    alice, bank = member("alice"), member("bank")
    mine = bank.upload_dataset(b"id\n" + b"".join(b"b%d\n" % i for i in range(40)), name="b.csv")
    theirs = alice.upload_dataset(b"id\nb1\nb2\nb3\nzz\n", name="a.csv")
    bank.set_policy(mine["id"], min_rows=10)
    task = alice.propose(
        "psi",
        inputs={"bank": mine["id"], "alice": theirs["id"]},
        outputs={"intersection_size": {"recipients": ["alice", "bank"]}},
    )
    assert any("fewer than 10 rows are withheld" in w for w in bank.review(bank.task(task["id"])))

    alice.approve(task["id"])
    bank.approve(task["id"])
    alice.run(task["id"])
    done = alice.wait(task["id"], timeout=60)

    assert done["status"] == "succeeded", done["failure_reason"]
    result = json.loads(alice.output(task["id"], "intersection_size"))
    assert "size" not in result
    assert "covers 3 row(s), fewer than the 10" in result["withheld"]


# -- DP budget ----------------------------------------------------------------------------


def _dp_task(alice: Client, dataset_id: str, epsilon: float) -> dict[str, Any]:
    return alice.propose(
        "tabular-train",
        inputs={"data": dataset_id},
        arguments={**DP_ARGS, "dp": {"epsilon": epsilon, "delta": 1e-6}},
        outputs={"metrics": {"recipients": ["alice", "bank"]}},
    )


@pytest.fixture(scope="module")
def budgeted(member: MemberFactory) -> dict[str, Any]:
    """bank's table under a DP budget of epsilon 1.5, delta 1e-5, readable by tabular-train."""
    bank = member("bank")
    dataset = bank.upload_dataset(TABLE, name="dp.csv", kind="table")
    bank.set_policy(dataset["id"], functions=["tabular-train"], dp=(1.5, 1e-5), min_rows=20)
    return dataset


def test_dp_task_spends_budget_and_one_beyond_it_is_refused(
    member: MemberFactory, platform: LocalPlatform, budgeted: dict[str, Any]
) -> None:
    alice, bank = member("alice"), member("bank")
    first = _dp_task(alice, budgeted["id"], 1.0)
    notes = bank.review(bank.task(first["id"]))
    assert any("every input spends epsilon=1," in n for n in notes), notes
    alice.approve(first["id"])
    bank.approve(first["id"])
    alice.run(first["id"])
    done = alice.wait(first["id"], timeout=300)
    assert done["status"] == "succeeded", done["failure_reason"]

    receipt = bank.receipt(first["id"])["body"]["privacy"]
    metrics = json.loads(bank.output(first["id"], "metrics"))
    assert receipt["function_ran"] is True
    spent = receipt["spent"]["data"]["epsilon"]
    assert 0 < spent <= 1.0 and spent == metrics["privacy"]["epsilon"]
    assert "loss" not in metrics["epochs"][0]  # training loss is not private: not reported
    assert bank.settle(first["id"]) == {"data": "spent"}
    left, _, _ = bank.ledger.remaining(budgeted["id"])
    assert left == pytest.approx(1.5 - spent)
    audit = [
        e for e in bank.audit() if e["action"] == "task.approve" and e["subject"] == first["id"]
    ]
    assert any(e["details"].get("privacy_spend") for e in audit)

    second = _dp_task(alice, budgeted["id"], 1.0)
    with pytest.raises(ClientError, match="rule 'budget'"):
        bank.approve(second["id"])
    # An owner client that skips its review but signs its true remaining budget: the enclave.
    alice.approve(second["id"])
    chash = contract_hash(second["contract"])
    statement = sign_budget_statement(
        contract_hash=chash,
        slot="data",
        ciphertext_sha256=budgeted["ciphertext_sha256"],
        ledger_version=99,
        remaining=(1.5 - spent, 1e-5 - 1e-6),
        spend=(1.0, 1e-6),
        key=bank.keys.signing_key,
    )
    _unreviewed_approve(bank, second["id"], {budget_slot("data"): statement})
    alice.run(second["id"])
    refused = alice.wait(second["id"], timeout=60)

    assert refused["status"] == "failed"
    assert "rule 'budget'" in refused["failure_reason"]
    assert outputs_of(alice, second["id"]) == []


def test_a_budget_statement_replayed_from_another_task_is_refused(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    dataset = bank.upload_dataset(TABLE, name="dp2.csv", kind="table")
    bank.set_policy(dataset["id"], dp=(5.0, 1e-5))
    first, second = _dp_task(alice, dataset["id"], 0.5), _dp_task(alice, dataset["id"], 4.0)
    alice.approve(first["id"])
    bank.approve(first["id"])  # signs "5.0 left" for the first task
    with operator_db(platform) as db:
        (wrapped,) = db.execute(
            "SELECT wrapped_keys FROM approvals WHERE task_id = ? AND username = 'bank'",
            (first["id"],),
        ).fetchone()
    old_statement = json.loads(wrapped)[budget_slot("data")]

    alice.approve(second["id"])
    _unreviewed_approve(bank, second["id"], {budget_slot("data"): old_statement})
    alice.run(second["id"])
    refused = alice.wait(second["id"], timeout=60)

    assert refused["status"] == "failed"
    assert "rule 'budget'" in refused["failure_reason"]
    assert "for another task" in refused["failure_reason"]


def test_failed_task_refunds_only_when_the_function_never_ran(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    dataset = bank.upload_dataset(TABLE, name="dp3.csv", kind="table")
    substitute = bank.upload_dataset(TABLE + b"\n", name="other.csv", kind="table")
    bank.set_policy(dataset["id"], dp=(2.0, 1e-5))

    # 1. Refused before the function saw a row (the ciphertext changed after approval): refund.
    refused = _dp_task(alice, dataset["id"], 0.5)
    alice.approve(refused["id"])
    bank.approve(refused["id"])
    assert bank.ledger.remaining(dataset["id"])[0] == pytest.approx(1.5)
    blobs = platform.data_dir / "blobs" / "datasets"
    original = (blobs / dataset["id"]).read_bytes()
    (blobs / dataset["id"]).write_bytes((blobs / substitute["id"]).read_bytes())
    alice.run(refused["id"])
    failed = alice.wait(refused["id"], timeout=60)
    (blobs / dataset["id"]).write_bytes(original)
    assert failed["status"] == "failed" and "differs from the approved" in failed["failure_reason"]
    assert bank.receipt(refused["id"])["body"]["privacy"] == {"function_ran": False, "spent": {}}

    assert bank.settle(refused["id"]) == {"data": "refunded"}
    assert bank.ledger.remaining(dataset["id"])[0] == pytest.approx(2.0)

    # 2. The function ran and then failed (an id column is no label: one class per row, which
    # only the data shows; a missing column would be refused at approval): the spend stands.
    ran = alice.propose(
        "tabular-train",
        inputs={"data": dataset["id"]},
        arguments={
            **DP_ARGS,
            "label_column": "patient_id",
            "dp": {"epsilon": 0.5, "delta": 1e-6},
        },
        outputs={"metrics": {"recipients": ["alice", "bank"]}},
    )
    alice.approve(ran["id"])
    bank.approve(ran["id"])
    alice.run(ran["id"])
    assert alice.wait(ran["id"], timeout=120)["status"] == "failed"
    assert bank.receipt(ran["id"])["body"]["privacy"]["function_ran"] is True

    assert bank.settle(ran["id"]) == {"data": "spent"}
    assert bank.ledger.remaining(dataset["id"])[0] == pytest.approx(1.5)


# -- the command line -----------------------------------------------------------------------


def test_policy_and_budget_from_the_command_line(
    member: MemberFactory,
    cli_victim: Path,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    alice = member("alice")
    data = tmp_path / "victim.csv"
    data.write_bytes(TABLE)
    uploaded = _cli(cli_victim, "dataset", "upload", str(data), "--name", "v.csv", "--json")
    dataset_id = json.loads(uploaded.stdout)["id"]

    signed = _cli(
        cli_victim, "dataset", "policy", dataset_id, "--function", "tabular-train",
        "--min-rows", "20", "--dp-epsilon", "2", "--json",
    )  # fmt: skip
    budget = _cli(cli_victim, "dataset", "budget", dataset_id, "--json")
    task = alice.propose(
        "echo", inputs={"data": dataset_id}, outputs={"data": {"recipients": ["victim"]}}
    )
    approved = _cli(cli_victim, "task", "approve", task["id"])

    assert signed.exit_code == 0, signed.stdout + signed.stderr
    assert json.loads(signed.stdout)["dp"] == {"epsilon": 2.0, "delta": 1e-5}
    assert json.loads(budget.stdout)["remaining_epsilon"] == 2.0
    assert approved.exit_code != 0
    assert "rule 'functions'" in approved.stdout + approved.stderr
