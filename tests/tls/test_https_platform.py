"""A platform served over HTTPS with a private CA: executors and members verify the server.

Real processes (LocalPlatform): the control plane serves TLS with ``teeflow tls init``'s
certificate, a sim executor registers over HTTPS with the CA from TEEFLOW_CA_CERT, and members
reach it only when they trust that CA and the certificate names the host they dial.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from teeflow.cli.main import app
from teeflow.client import Client, ClientError, MemberHome, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.server.launcher import LocalPlatform
from teeflow.tls import TlsFiles, make_private_ca

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_private_ca(tmp_path_factory.mktemp("tls") / "ca", hosts=["127.0.0.1"])


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory, tls: TlsFiles) -> Iterator[LocalPlatform]:
    with LocalPlatform(tmp_path_factory.mktemp("cp"), executors=1, tls=tls) as running:
        yield running


def _keys() -> MemberKeys:
    return MemberKeys(SigningKey.generate(), PrivateKey.generate())


def test_executor_registers_over_https_and_a_member_with_the_ca_signs_in(
    platform: LocalPlatform, tls: TlsFiles, tmp_path: Path
) -> None:
    assert platform.url.startswith("https://")
    keys = _keys()

    with Client(platform.url, keys=keys, home=MemberHome(tmp_path), ca_cert=tls.ca_cert) as c:
        c.register("alice", PASSWORD)
        c.login("alice", PASSWORD)
        enclave = c.enclave()

    assert len(enclave["executors"]) == 1  # the sim executor registered over HTTPS
    saved = json.loads((tmp_path / "credentials.json").read_text())
    assert saved["ca_cert"] == str(tls.ca_cert.resolve())  # later commands verify the same CA


@pytest.mark.parametrize("trust", ["system roots", "another CA", "a certificate for another host"])
def test_a_member_refuses_a_server_its_ca_does_not_vouch_for(
    platform: LocalPlatform, tmp_path: Path, trust: str
) -> None:
    ca_cert: Path | None = None
    url = platform.url
    if trust == "another CA":
        ca_cert = make_private_ca(tmp_path / "other", hosts=["127.0.0.1"]).ca_cert
    elif trust == "a certificate for another host":
        # The right CA, but the server is dialled by a name its certificate does not carry.
        ca_cert = platform.tls.ca_cert if platform.tls else None
        url = url.replace("127.0.0.1", "localhost")

    client = Client(url, keys=_keys(), ca_cert=ca_cert)
    with client, pytest.raises(ClientError, match="CERTIFICATE_VERIFY_FAILED"):
        client.register("mallory", PASSWORD)


def test_cli_member_signs_in_over_https_with_the_ca_it_was_given(
    platform: LocalPlatform, tmp_path: Path
) -> None:
    runner = CliRunner()
    ca_dir = tmp_path / "ca"
    made = runner.invoke(app, ["tls", "init", "--out", str(ca_dir), "--host", "cp.example"])
    assert made.exit_code == 0, made.output
    assert (ca_dir / "server.pem").exists() and (ca_dir / "ca.pem").exists()
    env = {"TEEFLOW_HOME": str(tmp_path / "home"), "PW": PASSWORD}
    ca = str(platform.tls.ca_cert) if platform.tls else ""
    assert runner.invoke(app, ["keys", "init"], env=env).exit_code == 0

    register = ["account", "register", "carol", "--server", platform.url, "--password-env", "PW"]
    refused = runner.invoke(app, register, env=env)
    registered = runner.invoke(app, [*register, "--ca-cert", ca], env=env)
    whoami = runner.invoke(app, ["account", "whoami", "--json"], env=env)

    assert refused.exit_code != 0 and "CERTIFICATE_VERIFY_FAILED" in refused.output
    assert registered.exit_code == 0, registered.output
    assert whoami.exit_code == 0, whoami.output
    assert json.loads(whoami.stdout)["username"] == "carol"
