"""Executors SIGKILLed again and again mid-training: every task still succeeds, each kill costs at
most the one epoch it interrupted, and the model is bit-equal to an uninterrupted run's.

Executors here checkpoint after every epoch (TEEFLOW_CHECKPOINT_INTERVAL_S=0; by default they
checkpoint at most once a second, and a kill then costs up to a second of training). The sealed
checkpoint's sequence, which the control plane stores, then counts epochs, and must never go back.
The enclave reports a finished epoch (an encrypted progress event, at most one a second, the first
one at once) before it checkpoints it, so at each kill the member's latest reported epoch may be at
most one past the stored checkpoint, and the next run's first report must be exactly the epoch
after it; across the run the reported epochs never go back. An epoch reported twice was redone.
"""

from __future__ import annotations

import itertools
import random
import time
from pathlib import Path

import pytest

from teeflow.client import Client
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.server.launcher import LocalPlatform

from .conftest import executor_ids, new_member, sqlite_row

KILLS = 20
EPOCHS = 150
ARGS = {
    "label_column": "malignant",
    "id_column": "patient_id",
    "model": "mlp",
    "epochs": EPOCHS,
    "batch_size": 8,
    "seed": 11,
}
ENV = {
    "TEEFLOW_LEASE_SECONDS": "3",
    # Every kill re-leases the task; the default (5 leases) would fail a task killed 5 times.
    "TEEFLOW_MAX_ATTEMPTS": str(KILLS + 10),
    "TEEFLOW_CHECKPOINT_INTERVAL_S": "0",
}


def _propose(alice: Client, bank: Client, dataset_id: str) -> str:
    task = alice.propose(
        "tabular-train",
        inputs={"patients": dataset_id},
        outputs={"model": {"recipients": ["bank"]}},
        arguments=ARGS,
        disclosure={"progress": ["bank"], "errors": ["bank"]},
    )
    alice.approve(task["id"])
    bank.approve(task["id"])
    alice.run(task["id"])
    return str(task["id"])


def _checkpoint(platform: LocalPlatform, task_id: str) -> int:
    row = sqlite_row(platform, "SELECT epoch FROM checkpoints WHERE task_id = ?", task_id)
    return int(str(row[0])) if row else 0


def _task_row(platform: LocalPlatform, task_id: str) -> tuple[str, str | None]:
    row = sqlite_row(platform, "SELECT status, lease_owner FROM tasks WHERE task_id = ?", task_id)
    assert row is not None
    return str(row[0]), None if row[1] is None else str(row[1])


def _kill_holder(platform: LocalPlatform, task_id: str, deadline: float) -> str | None:
    """SIGKILL the live executor that holds ``task_id``'s lease; return the task it held then
    (None if the task finished first)."""
    while time.monotonic() < deadline:
        status, owner = _task_row(platform, task_id)
        if status != "running":
            return None
        live = {
            executor_id: index
            for index, executor_id in executor_ids(platform).items()
            if platform.executors[index].poll() is None
        }
        if owner in live:
            platform.kill_executor(live[owner])
            platform.add_executor()
            # The dead executor's lease stays on the row until it expires: that is what it held.
            held = sqlite_row(
                platform,
                "SELECT task_id FROM tasks WHERE lease_owner = ? AND status = 'running'",
                owner,
            )
            return None if held is None else str(held[0])
        time.sleep(0.02)  # between a lease and the new holder's registration line in its log
    raise AssertionError(f"no live executor holds task {task_id} (expired lease not re-taken?)")


def _last_event(platform: LocalPlatform, task_id: str) -> int:
    row = sqlite_row(platform, "SELECT max(seq) FROM events WHERE task_id = ?", task_id)
    return int(str(row[0])) if row and row[0] is not None else 0


def _redone_epochs(progress: list[tuple[int, int]]) -> int:
    """How many reported epochs were reported again; fails if the reported epochs ever go back
    (more than the epoch in flight was lost)."""
    epochs = [epoch for _, epoch in progress]
    assert epochs, "no progress was reported"
    assert epochs[0] == 1 and epochs[-1] == EPOCHS, (epochs[0], epochs[-1])
    redone = 0
    for before, after in itertools.pairwise(epochs):
        assert after >= before, f"progress went back from epoch {before} to {after}"
        redone += after == before
    return redone


@pytest.mark.stress
def test_twenty_executor_kills_mid_training(tmp_path: Path) -> None:
    rng = random.Random(20)  # fixed: the kill points are the same in every run
    table = breast_cancer_hospitals()["hospital_a.csv"]
    with LocalPlatform(tmp_path / "platform", executors=2, env=ENV) as platform:
        alice = new_member(platform, tmp_path / "alice", "alice")
        bank = new_member(platform, tmp_path / "bank", "bank")
        try:
            dataset = bank.upload_dataset(table, name="patients.csv", kind="table")
            reference = _propose(alice, bank, dataset["id"])
            assert alice.wait(reference, timeout=300)["status"] == "succeeded"

            started = time.monotonic()
            tasks: list[str] = []
            kills: dict[str, int] = {}
            resumed_from: dict[str, int] = {}
            at_kill: list[tuple[str, int, int]] = []  # task, stored checkpoint, last event seq
            observed: dict[str, list[int]] = {}
            deadline = time.monotonic() + 600
            for number in range(KILLS):
                if number % (KILLS // 2) == 0:
                    # One training under fire at a time: while the killed one waits for its lease
                    # to lapse, another running freely could finish before its kills, on a fast
                    # machine or a loaded one (seen: "the task finished before 20 kills").
                    task = _propose(alice, bank, dataset["id"])
                    tasks.append(task)
                    kills[task], resumed_from[task], observed[task] = 0, 0, [0]
                target = tasks[-1]
                advance = rng.randint(1, 4)
                while (seen := _checkpoint(platform, target)) < resumed_from[target] + advance:
                    observed[target].append(seen)
                    assert time.monotonic() < deadline, f"kill {number}: training stalled"
                    time.sleep(0.01)
                time.sleep(rng.uniform(0.0, 0.08))  # land anywhere in the epoch
                held = _kill_holder(platform, target, deadline)
                assert held is not None, f"kill {number}: the task finished before 20 kills"
                kills[held] += 1
                resumed_from[held] = _checkpoint(platform, held)
                observed[held].append(resumed_from[held])
                at_kill.append((held, resumed_from[held], _last_event(platform, held)))
            done = {task: alice.wait(task, timeout=300) for task in tasks}
            elapsed = time.monotonic() - started

            expected_model = bank.output(reference, "model")
            redone = {}
            for task in tasks:
                errors = [e for e in bank.events(task) if e["kind"] == "error"]
                assert done[task]["status"] == "succeeded", (done[task]["failure_reason"], errors)
                assert done[task]["attempts"] >= kills[task] + 1
                assert observed[task] == sorted(observed[task]), "a checkpoint went back"
                progress = [
                    (e["seq"], e["epoch"]) for e in bank.events(task) if e["kind"] == "progress"
                ]
                redone[task] = _redone_epochs(progress)
                assert redone[task] <= kills[task], (kills[task], progress)
                for _, checkpoint, last_seq in (k for k in at_kill if k[0] == task):
                    # The killed run got at most one epoch past the stored checkpoint, and the
                    # next run went on from exactly there.
                    reported = max((e for s, e in progress if s <= last_seq), default=0)
                    resumed = next(e for s, e in progress if s > last_seq)
                    assert reported <= checkpoint + 1 == resumed, (reported, checkpoint, resumed)
                assert bank.output(task, "model") == expected_model
            assert sum(kills.values()) == KILLS
            print(
                f"{KILLS} kills over {len(tasks)} trainings of {EPOCHS} epochs in {elapsed:.0f} s;"
                f" kills {list(kills.values())}, epochs redone {list(redone.values())},"
                f" leases {[done[t]['attempts'] for t in tasks]}"
            )
        finally:
            alice.close()
            bank.close()
