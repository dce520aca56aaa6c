"""An executor killed while it holds a lease: the task is re-queued and another one finishes it."""

from __future__ import annotations

import time

from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory

SLOW_FUNCTION = """
import time

def run(ctx):
    time.sleep(4)
    ctx.outputs["out"].write(ctx.inputs["data"].read_bytes().upper())
"""


def _lease_holder(platform: LocalPlatform, task_id: str, timeout: float = 30.0) -> int:
    """Index of the executor process that holds the task's lease (from its log)."""
    import sqlite3

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(platform.data_dir / "teeflow.db") as db:
            row = db.execute(
                "SELECT lease_owner FROM tasks WHERE task_id = ?", (task_id,)
            ).fetchone()
        if row and row[0]:
            for index in range(len(platform.executors)):
                log = (platform.data_dir / "logs" / f"executor-{index}.log").read_text()
                if row[0] in log and platform.executors[index].poll() is None:
                    return index
        time.sleep(0.05)
    raise AssertionError("task was never leased")


def test_killed_executor_task_completes_elsewhere(
    member: MemberFactory, platform: LocalPlatform
) -> None:
    alice, bank = member("alice"), member("bank")
    function = alice.upload_function(
        SLOW_FUNCTION, name="slow-upper", inputs=["data"], outputs=["out"]
    )
    dataset = bank.upload_dataset(b"hello enclave\n", name="greeting.txt")
    task = alice.propose(
        function["id"], inputs={"data": dataset["id"]}, outputs={"out": {"recipients": ["bank"]}}
    )
    alice.approve(task["id"])
    bank.approve(task["id"])
    alice.run(task["id"])

    victim = _lease_holder(platform, task["id"])
    platform.kill_executor(victim)
    platform.add_executor()
    done = alice.wait(task["id"], timeout=120)

    assert done["status"] == "succeeded", done["failure_reason"]
    assert done["attempts"] >= 2
    assert bank.output(task["id"], "out") == b"HELLO ENCLAVE\n"
