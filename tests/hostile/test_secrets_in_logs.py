"""No secret reaches the platform's logs or its data directory.

A short flow runs through a real control plane and a real sim executor (separate processes, as
``teeflow server`` runs them, executor logging at DEBUG). Afterwards every log file, which holds
the processes' captured stdout and stderr, is scanned for members' passwords, bearer tokens,
private keys and data keys (raw, hex, base64), the dataset's plaintext and the executor
registration secret; the rest of the data directory for everything but that secret, whose own
file is the one place it belongs.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from teeflow.attestation import Policy, SimQuotingKey, sim_measurement
from teeflow.client import ApiError, Client, MemberHome, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.server.launcher import LocalPlatform

pytestmark = pytest.mark.slow


def _encodings(raw: bytes) -> list[bytes]:
    return [
        raw,
        raw.hex().encode(),
        raw.hex().upper().encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


def _scan(files: list[Path], markers: dict[str, bytes]) -> list[str]:
    """Every (file, marker name) where the marker occurs in the file."""
    found = []
    for path in files:
        data = path.read_bytes()
        found.extend(f"{path.name}: {name}" for name, marker in markers.items() if marker in data)
    return found


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalPlatform, Policy]]:
    data_dir = tmp_path_factory.mktemp("platform")
    with LocalPlatform(data_dir, executors=1, env={"TEEFLOW_LOG_LEVEL": "DEBUG"}) as running:
        # The members' policy: simulation allowed, the quoting key and the measurement pinned
        # (computed from this checkout as the executor started, as in tests/e2e).
        policy = Policy(
            allowed_tees=frozenset({"sim"}),
            allow_simulated=True,
            sim_quoting_keys=frozenset(
                {SimQuotingKey.load_or_create(data_dir / "platform").public_key_hex}
            ),
            allowed_measurements=frozenset({sim_measurement()}),
            accepted_tcb_statuses=frozenset({"Simulated"}),
        )
        yield running, policy


def _member(platform: LocalPlatform, policy: Policy, home: Path, name: str, pw: str) -> Client:
    keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
    client = Client(platform.url, keys=keys, home=MemberHome(home), policy=policy)
    client.register(name, pw)
    client.login(name, pw)
    return client


def test_no_secret_in_logs_or_data_dir(
    platform: tuple[LocalPlatform, Policy], tmp_path: Path
) -> None:
    running, policy = platform
    passwords = {name: f"pw-{name}-{secrets.token_hex(8)}" for name in ("alice", "bank")}
    alice = _member(running, policy, tmp_path / "alice", "alice", passwords["alice"])
    bank = _member(running, policy, tmp_path / "bank", "bank", passwords["bank"])
    plaintext = f"id,amount\nCANARY-{secrets.token_hex(8)},42\n".encode()
    tokens = {}
    try:
        with Client(running.url, keys=alice.keys) as typo, pytest.raises(ApiError):
            typo.login("alice", passwords["alice"] + "!")  # failed sign-ins are logged too
        dataset = bank.upload_dataset(plaintext, name="rows.csv", kind="table")
        task = alice.propose(
            "echo", inputs={"data": dataset["id"]}, outputs={"data": {"recipients": ["bank"]}}
        )
        alice.approve(task["id"])
        bank.approve(task["id"])
        alice.run(task["id"])
        assert alice.wait(task["id"], timeout=120)["status"] == "succeeded"
        assert bank.output(task["id"], "data") == plaintext
        for name, client in (("alice", alice), ("bank", bank)):
            tokens[name] = client.http.headers["Authorization"].removeprefix("Bearer ")
        alice.logout()
        data_key = bank.home.dataset_key(dataset["id"])
    finally:
        alice.close()
        bank.close()
    running.stop()  # flush and close every log
    assert data_key is not None

    markers: dict[str, bytes] = {"plaintext": plaintext, "plaintext row": plaintext.split(b"\n")[1]}
    for name in ("alice", "bank"):
        markers[f"{name} password"] = passwords[name].encode()
        markers[f"{name} token"] = tokens[name].encode()
    for name, client in (("alice", alice), ("bank", bank)):
        for what, raw in (
            ("signing key", client.keys.signing_key.to_bytes()),
            ("receiving key", client.keys.receiving_key.to_bytes()),
        ):
            for i, form in enumerate(_encodings(raw)):
                markers[f"{name} {what} #{i}"] = form
    for i, form in enumerate(_encodings(data_key.raw)):
        markers[f"data key #{i}"] = form
    executor_secret = (running.data_dir / "executor-secret").read_text().strip()

    logs = [p for p in running.data_dir.rglob("*") if p.is_file() and p.suffix == ".log"]
    rest = [
        p
        for p in running.data_dir.rglob("*")
        if p.is_file() and p not in logs and p.name != "executor-secret"
    ]

    # The scan finds what is there: the secret in its own file, the data key in bank's home.
    assert _scan([running.data_dir / "executor-secret"], {"s": executor_secret.encode()})
    assert _scan(list((tmp_path / "bank").rglob("*.json")), markers) != []
    assert {p.name for p in logs} >= {"server.log", "executor-0.log"}
    assert all(p.stat().st_size > 0 for p in logs)  # the processes did log
    assert _scan(logs, {**markers, "executor secret": executor_secret.encode()}) == []
    assert _scan(rest, markers) == []
