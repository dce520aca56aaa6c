"""Executors on other hosts, over HTTPS only (issue 13, item 3).

Each executor runs in network, mount and PID namespaces of its own (tests/tee/netns.py), joined
to the control plane's host by a veth pair: it reaches nothing but the control plane's HTTPS
address, verifies the server against the deployment's private CA, and sees none of the control
plane's, the key service's or the other executor's files (tmpfs over them). It gets the enclave
key by attested key release (relayed over HTTPS to a key service that serves HTTPS too),
registers, leases a training task, and the second one resumes the checkpoint the first sealed.

What is not separate: the kernel, the Python installation and the fake TEE device trees (FIFOs
served by this test process), and the registration secret, CA certificate and key-service policy
the executors are given (they would be copied to a real host).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stress._proxy import FaultPlan, fault_proxy
from teeflow.tls import TlsFiles, make_private_ca

from .deployment import Deployment, check_resumed, deploy, kill_when_held, start_training
from .netns import NetnsHost, netns_unavailable

UNAVAILABLE = netns_unavailable()
pytestmark = pytest.mark.skipif(
    UNAVAILABLE is not None, reason=f"executors in network namespaces: {UNAVAILABLE}"
)


Hosts = tuple[NetnsHost, NetnsHost, NetnsHost]


@pytest.fixture(scope="module")
def hosts() -> Iterator[Hosts]:
    """Three hosts, each used once (its veth pair goes when its namespace ends)."""
    made = (NetnsHost(1), NetnsHost(2), NetnsHost(3))
    try:
        yield made[0].create(), made[1].create(), made[2].create()
    finally:
        for host in made:
            host.close()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory, hosts: Hosts) -> TlsFiles:
    names = ["127.0.0.1", "localhost", *(h.host_ip for h in hosts)]
    return make_private_ca(tmp_path_factory.mktemp("tls") / "ca", hosts=names)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, tls: TlsFiles) -> Iterator[Deployment]:
    # The control plane listens on every address (HTTPS): the hosts dial it over their veth.
    with deploy(tmp_path_factory.mktemp("hosts"), tls=tls, host="0.0.0.0") as made:
        yield made


def _hidden(deployment: Deployment, *other_hosts: str) -> list[Path]:
    """What a host must not see: the control plane's and key service's data, other hosts'."""
    root = deployment.root
    return [root / "control-plane", root / "kbs", *(deployment.host_dir(h) for h in other_hosts)]


_PROBE = r"""
import socket, sys, httpx
from pathlib import Path
from teeflow.tls import InsecureTransportError, client_verify
url, port, ca, *hidden = sys.argv[1:]
try:
    socket.create_connection(("127.0.0.1", int(port)), timeout=2).close()
    print("loopback: reached the control plane")
except OSError:
    print("loopback: unreachable")
print("hidden:", sorted(p.name for h in hidden for p in Path(h).iterdir()))
print("https:", httpx.get(url + "/v1/health", verify=client_verify(url, ca_cert=Path(ca))).json())
try:
    client_verify(url.replace("https://", "http://"))
except InsecureTransportError:
    print("http: refused")
"""


@pytest.mark.slow
def test_a_namespaced_host_reaches_only_the_control_plane_over_https(
    deployment: Deployment, hosts: Hosts, tls: TlsFiles
) -> None:
    host = hosts[0]
    host.hide = [str(p) for p in _hidden(deployment)]
    url = f"https://{host.host_ip}:{deployment.platform.port}"
    process = subprocess.Popen(
        [
            *host.prefix(),
            *(sys.executable, "-c", _PROBE, url, str(deployment.platform.port), str(tls.ca_cert)),
            *host.hide,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    host.connect(process)
    out, _ = process.communicate(timeout=120)
    text = out.decode(errors="replace")

    assert process.returncode == 0, text
    assert "loopback: unreachable" in text  # its own network: the server's loopback is not there
    assert "hidden: []" in text  # the control plane's and key service's files are not there
    assert "https: {'status': 'ok'}" in text
    assert "http: refused" in text


@pytest.mark.slow
def test_executor_on_another_host_resumes_over_https(
    deployment: Deployment, hosts: Hosts, tls: TlsFiles
) -> None:
    platform = deployment.platform
    _, first, second = hosts
    first.hide = [str(p) for p in _hidden(deployment)]
    second.hide = [str(p) for p in _hidden(deployment, "tdx-a")]
    # The first host talks through a TLS-terminating gateway on its link that holds its third
    # checkpoint upload: it is then stuck mid-training at a known point, whatever the speed.
    plan = FaultPlan()
    plan.fail("PUT", r"/checkpoint$", nth=3, fault="hold")
    gateway = fault_proxy(
        platform.port,
        plan,
        listen=first.host_ip,
        tls=(tls.cert, tls.key),
        upstream_ca=tls.ca_cert,
    )
    with gateway as gateway_url:
        process = deployment.start_executor(
            "tdx", "tdx-a", server_url=gateway_url, prefix=first.prefix()
        )
        first.connect(process)
        platform.wait_executors(1)
        with deployment.member("alice", "tdx") as alice, deployment.member("bank", "tdx") as bank:
            task_id = start_training(alice, bank, name="patients.csv", seed=5)
            kill_when_held(platform, plan, 0, task_id)  # sealed on the first host

            url = f"https://{second.host_ip}:{platform.port}"  # the control plane itself
            process = deployment.start_executor(
                "tdx", "tdx-b", server_url=url, prefix=second.prefix()
            )
            second.connect(process)
            check_resumed(alice, bank, task_id, "tdx")
            assert len(deployment.releases(alice, "tdx")) >= 2  # each host got the key itself
    log = (platform.data_dir / "logs" / "executor-1.log").read_text()
    assert "registered executor" in log
    server_log = (platform.data_dir / "logs" / "server.log").read_text()
    assert f"{second.ip}:" in server_log  # the second host's requests came over its own link
