"""A deployment for executors on (fake) TEE hosts: a key service in its own process (simulated
TEE, fake hardware verifier), a control plane relaying to it, two members who sign the
allow-list, and executors started on fresh fake hosts (own device tree, own data directory).

With ``tls`` both servers serve HTTPS and everything that dials them verifies the private CA.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from stress._proxy import FaultPlan
from teeflow.attestation import Claims, Evidence, Policy
from teeflow.client import Client, MemberHome, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.server.launcher import LocalPlatform, free_port, wait_healthy
from teeflow.tls import TlsFiles, client_verify

from .conftest import EXECUTOR_POLICY, service_policy, signed_allow_list
from .fakes import FakeHardware, FakeHardwareVerifier, fake_gramine, fake_tsm

PASSWORD = "correct horse battery staple"
ROOT = SigningKey.generate()  # the fake hardware vendor's key, for this test session
MEASUREMENTS = {
    "tdx": bytes.fromhex("1d" * 48),
    "sev-snp": bytes.fromhex("5e" * 48),
    "sgx": bytes.fromhex("5a" * 32),
}
ARGS = {"label_column": "malignant", "id_column": "patient_id", "model": "mlp", "epochs": 40}


class Deployment:
    def __init__(
        self,
        root: Path,
        platform: LocalPlatform,
        keys: dict[str, MemberKeys],
        tls: TlsFiles | None,
    ) -> None:
        self.root = root
        self.platform = platform
        self.keys = keys
        self.tls = tls
        self.devices: list[Any] = []
        self.service_policy = root / "key-service-policy.json"

    def member(self, name: str, tee: str) -> Client:
        """``name``'s client with a policy for ``tee``'s executor, attested and logged in."""
        client = Client(
            self.platform.url,
            keys=self.keys[name],
            home=MemberHome(self.root / f"home-{name}"),
            policy=member_policy(tee),
            verifier=fake_member_verifier,
            ca_cert=self.tls.ca_cert if self.tls else None,
        )
        client.login(name, PASSWORD)
        client.attest()
        return client

    def host_dir(self, name: str) -> Path:
        return self.root / f"host-{name}"

    def start_executor(
        self,
        tee: str,
        name: str,
        *,
        server_url: str | None = None,
        prefix: Sequence[str] = (),
    ) -> subprocess.Popen[bytes]:
        """An executor on fake host ``name``: a fresh one (own device tree, own empty data
        directory) the first time, the same host (device tree, data directory) again after."""
        host = self.host_dir(name)
        hardware = FakeHardware(tee, MEASUREMENTS[tee], root=ROOT)
        if not (host / "data").exists():
            if tee == "sgx":
                self.devices.append(fake_gramine(host / "devroot", hardware))
            else:
                self.devices.append(fake_tsm(host / "tsm", hardware, entry="teeflow"))
            (host / "data").mkdir(parents=True)
        if tee == "sgx":
            tee_args: tuple[str, ...] = ("--device-root", str(host / "devroot"))
        else:
            tee_args = ("--device-root", str(host / "tsm"), "--tsm-entry", "teeflow")
        if tee == "sev-snp":
            # The SNP derived key that seals the keyring cache: a fake /dev/sev-guest in the
            # executor process (executor_fake.py), at this host's own device path.
            sev_guest = host / "dev" / "sev-guest"
            tee_args = (*tee_args, "--sev-guest", str(sev_guest))
            prefix = (
                *prefix, sys.executable, str(Path(__file__).with_name("executor_fake.py")),
                "--fake-root", ROOT.to_bytes().hex(), "--measurement", MEASUREMENTS[tee].hex(),
                "--sev-guest", str(sev_guest),
            )  # fmt: skip
        args = ("--tee", tee, *tee_args, "--key-service-policy", str(self.service_policy))
        return self.platform.add_executor(
            server_url=server_url, data_dir=host / "data", extra_args=args, prefix=prefix
        )

    def releases(self, client: Client, tee: str) -> list[dict[str, Any]]:
        """The audit log's key releases to ``tee``'s measurement."""
        return [
            e
            for e in client._call("GET", "/v1/audit")
            if e["action"] == "key.release"
            and e["details"].get("measurement") == MEASUREMENTS[tee].hex()
        ]


def fake_member_verifier(evidence: Evidence, policy: Policy, *, now: datetime) -> Claims:
    """What a member's client does on real hardware, with the fake root in place of Intel/AMD."""
    claims = FakeHardwareVerifier(ROOT.verify_key)(evidence, now)
    policy.check(claims, now=now)
    return claims


def member_policy(tee: str) -> Policy:
    return Policy(
        allowed_tees=frozenset({tee}),
        allow_simulated=True,  # the fake hardware's claims are simulated
        allowed_measurements=frozenset({MEASUREMENTS[tee].hex()}),
    )


@contextmanager
def deploy(
    root: Path, *, tls: TlsFiles | None = None, host: str = "127.0.0.1"
) -> Iterator[Deployment]:
    """Start the key service and the control plane (listening on ``host``) under ``root``."""
    keys = {n: MemberKeys(SigningKey.generate(), PrivateKey.generate()) for n in ("alice", "bank")}
    # The key service: its own TEE (simulated), data directory and port; the participants'
    # signing keys are the allow-list signers.
    kbs_dir = root / "kbs"
    kbs_dir.mkdir()
    (kbs_dir / "signers.txt").write_text(
        "".join(k.signing_key.verify_key.b64() + "\n" for k in keys.values())
    )
    (kbs_dir / "executor-policy.json").write_text(json.dumps(EXECUTOR_POLICY.to_dict()))
    kbs_port = free_port()
    tls_args = ("--tls-cert", str(tls.cert), "--tls-key", str(tls.key)) if tls else ()
    kbs_log = (root / "kbs.log").open("ab")
    kbs = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("keyservice_fake.py")),
            *("--data-dir", str(kbs_dir), "--port", str(kbs_port), *tls_args),
            *("--policy", str(kbs_dir / "executor-policy.json")),
            *("--signers", str(kbs_dir / "signers.txt"), "--fake-root", ROOT.verify_key.raw.hex()),
        ],
        stdout=kbs_log,
        stderr=subprocess.STDOUT,
    )
    kbs_url = f"{'https' if tls else 'http'}://127.0.0.1:{kbs_port}"
    env = {
        "TEEFLOW_KEY_SERVICE_URL": kbs_url,
        "TEEFLOW_LEASE_SECONDS": "3",
        "TEEFLOW_CHECKPOINT_INTERVAL_S": "0",
    }
    platform = LocalPlatform(root / "control-plane", executors=0, env=env, tls=tls, host=host)
    made: Deployment | None = None
    try:
        verify = client_verify(kbs_url, ca_cert=tls.ca_cert if tls else None)
        wait_healthy(kbs_url, process=kbs, verify=verify)  # type: ignore[arg-type]
        platform.start()
        platform.env["TEEFLOW_EXECUTOR_SECRET"] = (
            (root / "control-plane" / "executor-secret").read_text().strip()
        )
        made = Deployment(root, platform, keys, tls)
        for name, member_keys in keys.items():
            with Client(
                platform.url,
                keys=member_keys,
                home=MemberHome(root / f"home-{name}"),
                ca_cert=tls.ca_cert if tls else None,
            ) as c:
                c.register(name, PASSWORD)
        made.service_policy.write_text(json.dumps(service_policy(kbs_dir).to_dict()))
        # Both participants sign which measurements may have the key (via the relay).
        entries = [(tee, m.hex(), 1) for tee, m in MEASUREMENTS.items()]
        document = signed_allow_list([k.signing_key for k in keys.values()], entries, version=1)
        verify = client_verify(platform.url, ca_cert=tls.ca_cert if tls else None)
        httpx.put(
            f"{platform.url}/kbs/v0/allow-list", json=document, verify=verify
        ).raise_for_status()
        yield made
    finally:
        for device in made.devices if made else []:
            device.close()
        platform.stop()
        kbs.terminate()
        kbs.wait(timeout=10)
        kbs_log.close()


def checkpoint_sequence(platform: LocalPlatform, task_id: str) -> int:
    with sqlite3.connect(platform.data_dir / "teeflow.db") as db:
        row = db.execute("SELECT epoch FROM checkpoints WHERE task_id = ?", (task_id,)).fetchone()
    return int(row[0]) if row else 0


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def start_training(alice: Client, bank: Client, *, name: str, seed: int) -> str:
    """Bank's table, a tabular training both approve, run by alice; returns the task id."""
    dataset = bank.upload_dataset(
        breast_cancer_hospitals()["hospital_a.csv"], name=name, kind="table"
    )
    task = alice.propose(
        "tabular-train",
        inputs={"patients": dataset["id"]},
        outputs={"model": {"recipients": ["bank"]}, "metrics": {"recipients": ["bank"]}},
        arguments={**ARGS, "seed": seed},
    )
    alice.approve(task["id"])
    bank.approve(task["id"])
    alice.run(task["id"])
    task_id: str = task["id"]
    return task_id


def kill_when_held(platform: LocalPlatform, plan: FaultPlan, index: int, task_id: str) -> None:
    """Once ``plan`` holds executor ``index``'s checkpoint upload, kill it (a host lost
    mid-training) and check a sealed checkpoint is there to resume."""
    wait_for(lambda: bool(plan.injected), "training never reached its held checkpoint")
    platform.kill_executor(index)
    plan.release()
    assert checkpoint_sequence(platform, task_id) >= 1


def check_resumed(alice: Client, bank: Client, task_id: str, tee: str) -> dict[str, Any]:
    """Wait for the task; it succeeded on a later attempt with bank's model and a receipt for
    ``tee``'s measurement. Returns the receipt body."""
    done = alice.wait(task_id, timeout=300)
    errors = [e for e in alice.events(task_id) if e["kind"] == "error"]
    assert done["status"] == "succeeded", (done["failure_reason"], errors)
    assert done["attempts"] >= 2
    assert bank.output(task_id, "model")
    body: dict[str, Any] = done["receipt"]["body"]
    assert body["tee"] == tee and body["measurement"] == MEASUREMENTS[tee].hex()
    return body
