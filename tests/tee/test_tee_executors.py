"""Executors on (fake) TEE hardware: sgx via Gramine's /dev/attestation, tdx and sev-snp via
configfs-tsm. Each executor has its own empty data directory and shares nothing with the others
but the control plane's URL (and the registration secret); it gets the enclave key by attested
key release through the control plane's relay, registers, trains, and a second executor on
another fake host resumes the first one's sealed checkpoint after it is killed.

What is fake: the device trees (FIFOs served by a thread that plays the kernel) and the hardware
root (a test key, claims marked simulated). The executor, key service, control plane and member
code are the real processes.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from stress._proxy import FaultPlan, fault_proxy
from teeflow.attestation import Claims, Evidence, Policy
from teeflow.client import Client, MemberHome, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.functions.datasets import breast_cancer_hospitals
from teeflow.server.launcher import LocalPlatform, free_port, wait_healthy

from .conftest import EXECUTOR_POLICY, service_policy, signed_allow_list
from .fakes import FakeHardware, FakeHardwareVerifier, fake_gramine, fake_tsm

PASSWORD = "correct horse battery staple"
ROOT = SigningKey.generate()  # the fake hardware vendor's key, for this module only
MEASUREMENTS = {
    "tdx": bytes.fromhex("1d" * 48),
    "sev-snp": bytes.fromhex("5e" * 48),
    "sgx": bytes.fromhex("5a" * 32),
}
ARGS = {"label_column": "malignant", "id_column": "patient_id", "model": "mlp", "epochs": 40}


class Deployment:
    def __init__(self, root: Path, platform: LocalPlatform, keys: dict[str, MemberKeys]) -> None:
        self.root = root
        self.platform = platform
        self.keys = keys
        self.devices: list[Any] = []
        self.service_policy = root / "key-service-policy.json"

    def member(self, name: str, tee: str) -> Client:
        """``name``'s client with a policy for ``tee``'s executor, attested and logged in."""
        client = Client(
            self.platform.url,
            keys=self.keys[name],
            home=MemberHome(self.root / f"home-{name}"),
            policy=_member_policy(tee),
            verifier=fake_member_verifier,
        )
        client.login(name, PASSWORD)
        client.attest()
        return client

    def start_executor(self, tee: str, name: str, *, server_url: str | None = None) -> None:
        """An executor on a fresh fake host: own device tree, own empty data directory."""
        host = self.root / f"host-{name}"
        hardware = FakeHardware(tee, MEASUREMENTS[tee], root=ROOT)
        if tee == "sgx":
            self.devices.append(fake_gramine(host / "devroot", hardware))
            tee_args: tuple[str, ...] = ("--device-root", str(host / "devroot"))
        else:
            self.devices.append(fake_tsm(host / "tsm", hardware, entry="teeflow"))
            tee_args = ("--device-root", str(host / "tsm"), "--tsm-entry", "teeflow")
        (host / "data").mkdir(parents=True)
        args = ("--tee", tee, *tee_args, "--key-service-policy", str(self.service_policy))
        self.platform.add_executor(server_url=server_url, data_dir=host / "data", extra_args=args)


def fake_member_verifier(evidence: Evidence, policy: Policy, *, now: datetime) -> Claims:
    """What a member's client does on real hardware, with the fake root in place of Intel/AMD."""
    claims = FakeHardwareVerifier(ROOT.verify_key)(evidence, now)
    policy.check(claims, now=now)
    return claims


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("tee")
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
    kbs_log = (root / "kbs.log").open("ab")
    import subprocess

    kbs = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).with_name("keyservice_fake.py")),
            *("--data-dir", str(kbs_dir), "--port", str(kbs_port)),
            *("--policy", str(kbs_dir / "executor-policy.json")),
            *("--signers", str(kbs_dir / "signers.txt"), "--fake-root", ROOT.verify_key.raw.hex()),
        ],
        stdout=kbs_log,
        stderr=subprocess.STDOUT,
    )
    kbs_url = f"http://127.0.0.1:{kbs_port}"
    env = {
        "TEEFLOW_KEY_SERVICE_URL": kbs_url,
        "TEEFLOW_LEASE_SECONDS": "3",
        "TEEFLOW_CHECKPOINT_INTERVAL_S": "0",
    }
    platform = LocalPlatform(root / "control-plane", executors=0, env=env)
    try:
        wait_healthy(kbs_url, process=kbs)  # type: ignore[arg-type]
        platform.start()
        platform.env["TEEFLOW_EXECUTOR_SECRET"] = (
            (root / "control-plane" / "executor-secret").read_text().strip()
        )
        for name, member_keys in keys.items():
            with Client(
                platform.url, keys=member_keys, home=MemberHome(root / f"home-{name}")
            ) as c:
                c.register(name, PASSWORD)
        made = Deployment(root, platform, keys)
        made.service_policy.write_text(json.dumps(service_policy(kbs_dir).to_dict()))
        # Both participants sign which measurements may have the key (via the relay).
        entries = [(tee, m.hex(), 1) for tee, m in MEASUREMENTS.items()]
        document = signed_allow_list([k.signing_key for k in keys.values()], entries, version=1)
        httpx.put(f"{platform.url}/kbs/v0/allow-list", json=document).raise_for_status()
        yield made
    finally:
        for device in getattr(locals().get("made"), "devices", []):
            device.close()
        platform.stop()
        kbs.terminate()
        kbs.wait(timeout=10)
        kbs_log.close()


def _member_policy(tee: str) -> Policy:
    return Policy(
        allowed_tees=frozenset({tee}),
        allow_simulated=True,  # the fake hardware's claims are simulated
        allowed_measurements=frozenset({MEASUREMENTS[tee].hex()}),
    )


def _checkpoint_sequence(platform: LocalPlatform, task_id: str) -> int:
    with sqlite3.connect(platform.data_dir / "teeflow.db") as db:
        row = db.execute("SELECT epoch FROM checkpoints WHERE task_id = ?", (task_id,)).fetchone()
    return int(row[0]) if row else 0


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("tee", ["tdx", "sev-snp", "sgx"])
def test_executor_on_tee_trains_and_another_host_resumes(deployment: Deployment, tee: str) -> None:
    platform = deployment.platform
    registered = len(platform.executors)
    # The first executor talks through a proxy that holds its third checkpoint upload: it is
    # then stuck mid-training at a known point, whatever the machine's speed.
    plan = FaultPlan()
    plan.fail("PUT", r"/checkpoint$", nth=3, fault="hold")
    with fault_proxy(platform.port, plan) as proxy_url:
        deployment.start_executor(tee, f"{tee}-a", server_url=proxy_url)
        platform.wait_executors(registered + 1)
        with deployment.member("alice", tee) as alice, deployment.member("bank", tee) as bank:
            _train_and_resume(deployment, alice, bank, tee, registered, plan)


def _train_and_resume(
    deployment: Deployment,
    alice: Client,
    bank: Client,
    tee: str,
    registered: int,
    plan: FaultPlan,
) -> None:
    platform = deployment.platform
    attested = alice.attest()
    assert attested["tee"] == tee and attested["measurement"] == MEASUREMENTS[tee].hex()

    dataset = bank.upload_dataset(
        breast_cancer_hospitals()["hospital_a.csv"], name=f"patients-{tee}.csv", kind="table"
    )
    task = alice.propose(
        "tabular-train",
        inputs={"patients": dataset["id"]},
        outputs={"model": {"recipients": ["bank"]}, "metrics": {"recipients": ["bank"]}},
        arguments={**ARGS, "seed": 3},
    )
    alice.approve(task["id"])
    bank.approve(task["id"])
    alice.run(task["id"])
    _wait_for(lambda: bool(plan.injected), "training never reached its third checkpoint")
    platform.kill_executor(registered)
    plan.release()
    assert _checkpoint_sequence(platform, task["id"]) >= 1  # a sealed checkpoint to resume

    deployment.start_executor(tee, f"{tee}-b")  # another host: nothing shared but the URL
    done = alice.wait(task["id"], timeout=300)

    errors = [e for e in alice.events(task["id"]) if e["kind"] == "error"]
    assert done["status"] == "succeeded", (done["failure_reason"], errors)
    assert done["attempts"] >= 2
    assert bank.output(task["id"], "model")
    body = done["receipt"]["body"]
    assert body["tee"] == tee and body["measurement"] == MEASUREMENTS[tee].hex()
    assert body["peak_memory_bytes"] > 0  # the enclave's peak memory, in the signed receipt
    log = (platform.data_dir / "logs" / f"executor-{registered + 1}.log").read_text()
    assert f"({tee}, measurement {MEASUREMENTS[tee].hex()[:16]})" in log
    releases = [
        e
        for e in alice._call("GET", "/v1/audit")
        if e["action"] == "key.release"
        and e["details"].get("measurement") == MEASUREMENTS[tee].hex()
    ]
    assert len(releases) >= 2  # one per executor


def _kbs_releases(deployment: Deployment, tee: str) -> int:
    log = deployment.root / "kbs" / "audit.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return sum(
        1
        for r in records
        if r["action"] == "key.release" and r["measurement"] == MEASUREMENTS[tee].hex()
    )


@pytest.mark.slow
@pytest.mark.parametrize(("tee", "releases_on_restart"), [("tdx", 1), ("sgx", 0)])
def test_restart_asks_again_on_tdx_but_uses_the_sealed_cache_on_sgx(
    deployment: Deployment, tee: str, releases_on_restart: int
) -> None:
    """TDX has no sealing key: a restarted executor makes a second key release. On SGX the
    keyring is cached sealed under Gramine's _sgx_mrenclave key: the restart makes none."""
    platform = deployment.platform
    name = f"{tee}-restart"
    host = deployment.root / f"host-{name}"

    def boot_and_wait() -> str:
        index = len(platform.executors)
        if not (host / "data").exists():
            deployment.start_executor(tee, name)
        else:  # the same host again: same device tree, same data directory
            tee_args = (
                ("--device-root", str(host / "devroot")) if tee == "sgx" else
                ("--device-root", str(host / "tsm"), "--tsm-entry", "teeflow")
            )  # fmt: skip
            args = ("--tee", tee, *tee_args, "--key-service-policy", str(deployment.service_policy))
            platform.add_executor(data_dir=host / "data", extra_args=args)
        log = platform.data_dir / "logs" / f"executor-{index}.log"
        _wait_for(
            lambda: log.exists() and "enclave key epoch" in log.read_text(errors="replace"),
            f"executor {index} never got its enclave key",
        )
        platform.kill_executor(index)
        return log.read_text(errors="replace")

    before = _kbs_releases(deployment, tee)
    first = boot_and_wait()
    assert "from key release" in first
    assert _kbs_releases(deployment, tee) == before + 1

    second = boot_and_wait()
    assert _kbs_releases(deployment, tee) == before + 1 + releases_on_restart
    expected = "from key release" if releases_on_restart else "from the hardware-sealed cache"
    assert expected in second


def test_the_allow_list_in_force_is_shown_through_the_relay(deployment: Deployment) -> None:
    """A member reads the signed allow-list in force with the CLI, via the control plane."""
    from typer.testing import CliRunner

    from teeflow.cli.main import app

    result = CliRunner().invoke(
        app, ["enclave", "allow-list", "show", "--server", deployment.platform.url, "--json"]
    )
    shown = json.loads(result.output)
    assert shown["version"] >= 1
    assert f"tdx:{MEASUREMENTS['tdx'].hex()}:1" in shown["entries"]
    assert sorted(shown["signed_by"]) == sorted(
        k.signing_key.verify_key.b64() for k in deployment.keys.values()
    )
