"""Credentials never cross the network in clear: every client refuses plain http to another
host, and the servers refuse to listen for it off loopback, unless told ``--insecure-http``.

(These tests use only the public entry points, so that they ran, and failed, on the code before
HTTPS between hosts was built.)
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from teeflow.client import Client, ClientError, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.server.app import create_app
from teeflow.server.launcher import free_port
from teeflow.server.settings import Settings

ELSEWHERE = "http://192.0.2.10:8321"  # TEST-NET-1 (RFC 5737): another host, never reached


def _keys() -> MemberKeys:
    return MemberKeys(SigningKey.generate(), PrivateKey.generate())


def test_member_client_refuses_plain_http_to_another_host() -> None:
    with pytest.raises(ClientError) as caught:
        Client(ELSEWHERE, keys=_keys())

    assert "refusing plain http to 192.0.2.10" in str(caught.value)
    assert "--ca-cert" in str(caught.value)


def test_member_client_takes_plain_http_to_another_host_only_when_told() -> None:
    with Client(ELSEWHERE, keys=_keys(), insecure_http=True) as client:
        assert client.server == ELSEWHERE


def test_executor_refuses_plain_http_to_another_host(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-m", "teeflow.executor"),
            *("--server", ELSEWHERE, "--data-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "TEEFLOW_EXECUTOR_SECRET": "s" * 32},
    )

    assert result.returncode == 2, result.stderr[-2000:]
    assert "refusing plain http to 192.0.2.10" in result.stderr
    assert not (tmp_path / "platform").exists()  # it stopped before booting the enclave


@pytest.mark.parametrize("module", ["teeflow.server", "teeflow.keyservice"])
def test_servers_refuse_plain_http_off_loopback(tmp_path: Path, module: str) -> None:
    (tmp_path / "policy.json").write_text("{}")
    (tmp_path / "signers.txt").write_text("")
    extra = ["--policy", str(tmp_path / "policy.json"), "--signers", str(tmp_path / "signers.txt")]
    process = subprocess.Popen(
        [sys.executable, "-m", module, "--data-dir", str(tmp_path / "data")]
        + ["--host", "0.0.0.0", "--port", str(free_port())]
        + (extra if module == "teeflow.keyservice" else []),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"{module} served plain http on 0.0.0.0")

    assert process.returncode != 0
    assert "refusing to serve" in output and "--tls-cert" in output


def test_relay_refuses_a_plain_http_key_service_on_another_host(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", key_service_url="http://192.0.2.20:8700")
    app = create_app(settings)

    async def auth() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
            return await http.post("/kbs/v0/auth", json={"version": "0.1.0", "tee": "sample"})

    response = asyncio.run(auth())

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "key_service_insecure"


def test_allow_list_cli_refuses_plain_http_to_another_host(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from teeflow.cli.main import app

    document = tmp_path / "list.json"
    document.write_text('{"body": {"version": 1, "entries": [], "revoked": []}, "signatures": {}}')

    result = CliRunner().invoke(
        app, ["enclave", "allow-list", "submit", str(document), "--server", ELSEWHERE]
    )

    assert result.exit_code != 0
    assert "refusing plain http to 192.0.2.10" in result.output
