"""Resumable training: an executor killed mid-training; another resumes from the sealed checkpoint
and the model equals that of an uninterrupted run with the same seed, bit for bit."""

from __future__ import annotations

import sqlite3
import time

from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory, lease_holder

ARGS = {
    "label_column": "malignant",
    "id_column": "patient_id",
    "model": "mlp",
    "epochs": 120,
    "seed": 7,
}


def _train(alice, bank, dataset_id: str) -> dict:
    task = alice.propose(
        "tabular-train",
        inputs={"patients": dataset_id},
        outputs={"model": {"recipients": ["bank"]}, "metrics": {"recipients": ["bank"]}},
        arguments=ARGS,
    )
    alice.approve(task["id"])
    bank.approve(task["id"])
    alice.run(task["id"])
    return task


def _checkpoint_sequence(platform: LocalPlatform, task_id: str) -> int:
    with sqlite3.connect(platform.data_dir / "teeflow.db") as db:
        row = db.execute("SELECT epoch FROM checkpoints WHERE task_id = ?", (task_id,)).fetchone()
    return int(row[0]) if row else 0


def test_training_resumes_on_another_executor_with_identical_result(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    table = breast_cancer_hospitals()["hospital_a.csv"]
    dataset = bank.upload_dataset(table, name="patients.csv", kind="table")

    reference = _train(alice, bank, dataset["id"])
    assert alice.wait(reference["id"], timeout=300)["status"] == "succeeded"
    interrupted = _train(alice, bank, dataset["id"])
    victim = lease_holder(platform, interrupted["id"])
    deadline = time.monotonic() + 120
    while _checkpoint_sequence(platform, interrupted["id"]) < 5:
        assert time.monotonic() < deadline, "training never checkpointed"
        time.sleep(0.02)
    platform.kill_executor(victim)
    platform.add_executor()
    done = alice.wait(interrupted["id"], timeout=300)

    errors = [e for e in alice.events(interrupted["id"]) if e["kind"] == "error"]
    assert done["status"] == "succeeded", (done["failure_reason"], errors)
    assert done["attempts"] >= 2
    assert bank.output(interrupted["id"], "model") == bank.output(reference["id"], "model")
