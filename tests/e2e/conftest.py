"""End-to-end fixtures: a real control plane (uvicorn) and real sim executors, each a separate
process on loopback, and members with their own homes, keys and attestation policies."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from teeflow.attestation import Policy, SimQuotingKey, sim_measurement
from teeflow.client import Client, MemberHome, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.server.launcher import LocalPlatform

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    data_dir = tmp_path_factory.mktemp("platform")
    # Short leases so a killed executor's task is re-queued within seconds.
    # Checkpoint after every epoch (the default paces them to one a second): the resume tests
    # kill an executor after a given checkpoint.
    env = {"TEEFLOW_LEASE_SECONDS": "3", "TEEFLOW_CHECKPOINT_INTERVAL_S": "0"}
    with LocalPlatform(data_dir, executors=2, env=env) as running:
        yield running


def member_policy(platform: LocalPlatform) -> Policy:
    """A member's own policy: simulation explicitly allowed, the quoting key pinned, and the
    measurement computed by the member from its own copy of the code."""
    quoting_key = SimQuotingKey.load_or_create(platform.data_dir / "platform")
    return Policy(
        allowed_tees=frozenset({"sim"}),
        allow_simulated=True,
        sim_quoting_keys=frozenset({quoting_key.public_key_hex}),
        allowed_measurements=frozenset({sim_measurement()}),
        accepted_tcb_statuses=frozenset({"Simulated"}),
    )


MemberFactory = Callable[[str], Client]


@pytest.fixture(scope="module")
def member(
    platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MemberFactory]:
    made: dict[str, Client] = {}

    def make(name: str) -> Client:
        if name not in made:
            home = MemberHome(tmp_path_factory.mktemp(f"home-{name}"))
            keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
            client = Client(platform.url, keys=keys, home=home, policy=member_policy(platform))
            client.register(name, PASSWORD)
            client.login(name, PASSWORD)
            made[name] = client
        return made[name]

    yield make
    for client in made.values():
        client.close()


@contextmanager
def operator_db(platform: LocalPlatform) -> Iterator[sqlite3.Connection]:
    """Direct write access to the control plane's database, as a malicious operator has."""
    connection = sqlite3.connect(platform.data_dir / "teeflow.db", timeout=30)
    try:
        with connection:
            yield connection
    finally:
        connection.close()


@contextmanager
def executors_paused(platform: LocalPlatform) -> Iterator[None]:
    """Every executor stopped (SIGSTOP), so a queued task waits, as on a busy platform."""
    for index in range(len(platform.executors)):
        platform.pause_executor(index)
    try:
        yield
    finally:
        for index in range(len(platform.executors)):
            platform.resume_executor(index)


def same_member(client: Client, **overrides: Any) -> Client:
    """The same member (keys, home, session) in a second client, with ``overrides`` of
    :class:`Client`'s arguments (another ``clock``, a hostile ``transport`` ...)."""
    arguments: dict[str, Any] = {
        "keys": client.keys,
        "home": client.home,
        "token": client.http.headers["Authorization"].removeprefix("Bearer "),
        "username": client.username,
    }
    return Client(client.server, **{**arguments, **overrides})


def echo_task(creator: Client, owner: Client, payload: bytes) -> str:
    """A proposed `echo` task over ``owner``'s upload of ``payload``, output to ``owner``."""
    dataset = owner.upload_dataset(payload, name="rows.csv", kind="other")
    task = creator.propose(
        "echo",
        inputs={"data": dataset["id"]},
        outputs={"data": {"recipients": [str(owner.username)]}},
    )
    return str(task["id"])


def refused_by_enclave(client: Client, task_id: str) -> str:
    """Wait for the task; assert the enclave failed it and nothing was delivered; the reason."""
    done = client.wait(task_id, timeout=120)
    assert done["status"] == "failed", done
    assert client.outputs(task_id) == []
    assert done["receipt"]["body"]["status"] == "failed"
    return str(done["failure_reason"])


def operator_write_output(platform: LocalPlatform, task_id: str, slot: str, data: bytes) -> None:
    """Overwrite an output's stored ciphertext wherever the control plane keeps it: its row
    (a small output, ``rows/`` key) or its blob file."""
    with operator_db(platform) as db:
        (key,) = db.execute(
            "SELECT blob_key FROM outputs WHERE task_id = ? AND slot = ?", (task_id, slot)
        ).fetchone()
        if key.startswith("rows/"):
            changed = db.execute("UPDATE row_blobs SET content = ? WHERE blob_key = ?", (data, key))
            assert changed.rowcount == 1
            return
    blob = platform.data_dir / "blobs" / key
    assert blob.is_file()
    blob.write_bytes(data)


def scan_for(root: Path, markers: list[bytes]) -> list[str]:
    """Every (file, marker) where a marker occurs anywhere under root."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found.extend(f"{path}: {m!r}" for m in markers if m in data)
    return found


def lease_holder(platform: LocalPlatform, task_id: str, timeout: float = 30.0) -> int:
    """Index of the executor process that holds the task's lease (from its log)."""
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
