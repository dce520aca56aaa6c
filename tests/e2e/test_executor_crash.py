"""An executor killed while it holds a lease: the task is re-queued and another one finishes it."""

from __future__ import annotations

from teeflow.server.launcher import LocalPlatform

from .conftest import MemberFactory, lease_holder

SLOW_FUNCTION = """
import time

def run(ctx):
    time.sleep(4)
    ctx.outputs["out"].write(ctx.inputs["data"].read_bytes().upper())
"""


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

    victim = lease_holder(platform, task["id"])
    platform.kill_executor(victim)
    platform.add_executor()
    done = alice.wait(task["id"], timeout=120)

    errors = [e for e in alice.events(task["id"]) if e["kind"] == "error"]
    assert done["status"] == "succeeded", (done["failure_reason"], errors)
    assert done["attempts"] >= 2
    assert bank.output(task["id"], "out") == b"HELLO ENCLAVE\n"
