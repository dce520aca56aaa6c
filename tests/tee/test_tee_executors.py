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
from collections.abc import Iterator

import pytest

from stress._proxy import FaultPlan, fault_proxy
from teeflow.client import Client

from .deployment import (
    MEASUREMENTS,
    Deployment,
    check_resumed,
    deploy,
    kill_when_held,
    start_training,
    wait_for,
)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with deploy(tmp_path_factory.mktemp("tee")) as made:
        yield made


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

    task_id = start_training(alice, bank, name=f"patients-{tee}.csv", seed=3)
    kill_when_held(platform, plan, registered, task_id)

    deployment.start_executor(tee, f"{tee}-b")  # another host: nothing shared but the URL
    body = check_resumed(alice, bank, task_id, tee)
    assert body["peak_memory_bytes"] > 0  # the enclave's peak memory, in the signed receipt
    log = (platform.data_dir / "logs" / f"executor-{registered + 1}.log").read_text()
    assert f"({tee}, measurement {MEASUREMENTS[tee].hex()[:16]})" in log
    assert len(deployment.releases(alice, tee)) >= 2  # one per executor


def _kbs_releases(deployment: Deployment, tee: str) -> int:
    log = deployment.root / "kbs" / "audit.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return sum(
        1
        for r in records
        if r["action"] == "key.release" and r["measurement"] == MEASUREMENTS[tee].hex()
    )


@pytest.mark.slow
@pytest.mark.parametrize(("tee", "releases_on_restart"), [("tdx", 1), ("sgx", 0), ("sev-snp", 0)])
def test_restart_asks_again_on_tdx_but_uses_the_sealed_cache_on_sgx_and_sev_snp(
    deployment: Deployment, tee: str, releases_on_restart: int
) -> None:
    """TDX has no sealing key: a restarted executor makes a second key release. On SGX the
    keyring is cached sealed under Gramine's _sgx_mrenclave key, on SEV-SNP under the key
    SNP_GET_DERIVED_KEY gives (the executor's --sev-guest device, a fake firmware here): the
    restart makes no release, only the attested status check (keystatus.py)."""
    platform = deployment.platform
    name = f"{tee}-restart"
    host = deployment.root / f"host-{name}"

    def boot_and_wait() -> str:
        index = len(platform.executors)
        deployment.start_executor(tee, name)  # the second time: the same host again
        log = platform.data_dir / "logs" / f"executor-{index}.log"
        wait_for(
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
    if tee == "sev-snp":  # both boots asked the (fake) firmware at the configured device path
        requests = (host / "dev" / "sev-guest.requests").read_text().splitlines()
        assert len(requests) >= 2 and set(requests) == {"(0, 9, 0)"}


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
