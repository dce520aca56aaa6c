"""The control plane restarted while tasks are in every state: nothing is lost, nothing is stuck.

Before the restart: a training task is running (one executor, checkpointing each epoch, paused
by SIGSTOP once it has checkpointed so that how fast the machine trains does not matter), an echo
task is queued behind it, one is approved but not run, one is proposed with one of two approvals
and one with none. After it: every task, approval, dataset and audit entry is still there, the audit
log verifies and extends the one seen before, the members' tokens still work (they are stored,
hashed, in the database), the proposed tasks can be approved and run, and all five succeed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from teeflow.client import Client
from teeflow.client.audit_verify import verify_audit_log
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.server.launcher import LocalPlatform

from .conftest import new_member, server_errors, sqlite_row

EPOCHS = 300
TRAIN_ARGS = {
    "label_column": "malignant",
    "id_column": "patient_id",
    "model": "mlp",
    "epochs": EPOCHS,
    "batch_size": 8,
    "seed": 3,
}


def _echo(creator: Client, inputs: dict[str, str]) -> str:
    """An echo task over ``inputs`` (slot -> dataset id), every output to the creator."""
    outputs = {slot: {"recipients": [str(creator.username)]} for slot in inputs}
    return str(creator.propose("echo", inputs=inputs, outputs=outputs)["id"])


def _snapshot(members: dict[str, Client]) -> dict[str, Any]:
    """What each member sees: tasks (id -> contract hash, approvals), datasets; plus the log."""
    seen: dict[str, Any] = {}
    for name, client in members.items():
        seen[f"{name}.tasks"] = {
            t["id"]: (t["contract_hash"], t["approvals"], t["creator"]) for t in client.tasks()
        }
        seen[f"{name}.datasets"] = {
            d["id"]: (d["state"], d["ciphertext_sha256"]) for d in client.datasets()
        }
    return seen


def _wait_for_checkpoint(platform: LocalPlatform, task_id: str, epoch: int) -> None:
    deadline = time.monotonic() + 180
    while True:
        row = sqlite_row(platform, "SELECT epoch FROM checkpoints WHERE task_id = ?", task_id)
        if row is not None and int(str(row[0])) >= epoch:
            return
        assert time.monotonic() < deadline, "training never reached the checkpoint"
        time.sleep(0.05)


@pytest.mark.stress
def test_restart_with_tasks_in_every_state(tmp_path: Path) -> None:
    # Checkpoint every epoch (the default paces them to one a second, and a fast machine finishes
    # training before the first); the lease outlives the pause and the restart.
    env = {"TEEFLOW_LEASE_SECONDS": "60", "TEEFLOW_CHECKPOINT_INTERVAL_S": "0"}
    with LocalPlatform(tmp_path / "platform", executors=1, env=env) as platform:
        members = {n: new_member(platform, tmp_path / n, n) for n in ("alice", "bank", "carol")}
        alice, bank, carol = members["alice"], members["bank"], members["carol"]
        try:
            table = breast_cancer_hospitals()["hospital_a.csv"]
            patients = bank.upload_dataset(table, name="patients.csv", kind="table")["id"]
            notes = {
                client: client.upload_dataset(b"id,v\n1,2\n", name="notes.csv")["id"]
                for client in (bank, carol)
            }
            training = alice.propose(
                "tabular-train",
                inputs={"patients": patients},
                outputs={"model": {"recipients": ["bank"]}},
                arguments=TRAIN_ARGS,
                disclosure={"progress": ["bank"], "errors": ["bank"]},
            )["id"]
            for client in (alice, bank):
                client.approve(training)
            alice.run(training)
            _wait_for_checkpoint(platform, training, 5)
            platform.pause_executor(0)  # still "running", whatever the machine's speed
            queued = _echo(carol, {"notes": notes[carol]})
            carol.approve(queued)
            carol.run(queued)
            approved = _echo(bank, {"notes": notes[bank]})
            bank.approve(approved)
            partly = _echo(alice, {"bank": notes[bank], "carol": notes[carol]})
            alice.approve(partly)
            bank.approve(partly)
            unapproved = _echo(carol, {"bank": notes[bank], "carol": notes[carol]})
            creators = {training: alice, queued: carol, approved: bank, partly: alice}
            creators[unapproved] = carol
            assert {t: c.task(t)["status"] for t, c in creators.items()} == {
                training: "running",
                queued: "queued",
                approved: "approved",
                partly: "proposed",
                unapproved: "proposed",
            }
            before, audit_before = _snapshot(members), alice.audit()

            platform.restart_server()
            platform.resume_executor(0)

            # Tokens issued before the restart still work: no member signs in again.
            after, audit_after = _snapshot(members), alice.audit()
            assert after == before
            assert audit_after[: len(audit_before)] == audit_before
            assert verify_audit_log(audit_after, policy=alice.policy()).ok
            assert bank.task(partly)["approvals"] == {"alice": "approve", "bank": "approve"}

            carol.approve(partly)
            alice.run(partly)
            bank.approve(unapproved)
            carol.approve(unapproved)
            carol.run(unapproved)
            bank.run(approved)
            done = {t: c.wait(t, timeout=300) for t, c in creators.items()}
            assert {t: d["status"] for t, d in done.items()} == dict.fromkeys(done, "succeeded"), {
                t: d["failure_reason"] for t, d in done.items()
            }
            assert carol.output(queued, "notes") == b"id,v\n1,2\n"
            assert bank.output(approved, "notes") == b"id,v\n1,2\n"
            assert alice.output(partly, "carol") == b"id,v\n1,2\n"
            assert bank.output(training, "model")
            progress = [e["epoch"] for e in bank.events(training) if e["kind"] == "progress"]
            assert progress[-1] == EPOCHS and len(progress) <= EPOCHS + done[training]["attempts"]
            report = verify_audit_log(alice.audit(), policy=alice.policy())
            assert report.ok, report.problem
            assert set(done) <= {t for t, s in report.tasks.items() if s == "succeeded"}
            assert server_errors(platform) == []
        finally:
            for client in members.values():
                client.close()
