"""Brief control-plane failures seen by an executor mid-training (a 503 from a gateway, a connection
closed without an answer) are retried; they never fail the task or cost an epoch.

Before the executor retried, the first such error surfaced inside the function (at its checkpoint
or progress call), the enclave reported "function raised HTTPStatusError" and the executor
delivered that as the task's final, failed result.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.server.launcher import LocalPlatform

from ._proxy import FaultPlan, fault_proxy
from .conftest import new_member

EPOCHS = 40
TASK = r"^/v1/executor/tasks/[0-9a-f]+"


@pytest.mark.stress
def test_executor_rides_out_control_plane_hiccups(tmp_path: Path) -> None:
    plan = FaultPlan()
    plan.fail("PUT", TASK + "/checkpoint$", nth=2, fault="503")
    plan.fail("POST", TASK + "/events$", nth=2, fault="drop")
    plan.fail("PUT", TASK + "/checkpoint$", nth=6, fault="drop")
    plan.fail("POST", TASK + "/finish$", nth=1, fault="drop")
    env = {"TEEFLOW_LEASE_SECONDS": "5", "TEEFLOW_CHECKPOINT_INTERVAL_S": "0"}
    with (
        LocalPlatform(tmp_path / "platform", executors=0, env=env) as platform,
        fault_proxy(platform.port, plan) as proxy_url,
    ):
        platform.add_executor(server_url=proxy_url)
        platform.wait_executors(1)
        alice = new_member(platform, tmp_path / "alice", "alice")
        bank = new_member(platform, tmp_path / "bank", "bank")
        try:
            table = breast_cancer_hospitals()["hospital_a.csv"]
            dataset = bank.upload_dataset(table, name="patients.csv", kind="table")
            task = alice.propose(
                "tabular-train",
                inputs={"patients": dataset["id"]},
                outputs={"model": {"recipients": ["bank"]}},
                arguments={
                    "label_column": "malignant",
                    "id_column": "patient_id",
                    "model": "mlp",
                    "epochs": EPOCHS,
                },
                disclosure={"progress": ["bank"], "errors": ["bank"]},
            )
            alice.approve(task["id"])
            bank.approve(task["id"])
            alice.run(task["id"])
            done = alice.wait(task["id"], timeout=300)

            events = bank.events(task["id"])
            errors = [e for e in events if e["kind"] == "error"]
            assert done["status"] == "succeeded", (done["failure_reason"], errors)
            assert len(plan.injected) == 4, plan.injected
            assert done["attempts"] == 1
            progress = [e["epoch"] for e in events if e["kind"] == "progress"]
            # Progress leaves at most once a second: increasing, from the first epoch to the last.
            assert progress == sorted(set(progress)) and progress[0] == 1 and progress[-1] == EPOCHS
            assert bank.output(task["id"], "model")
        finally:
            alice.close()
            bank.close()
