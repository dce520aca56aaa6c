"""``GET /operator``: the operator's read-only status page, off by default, with nothing secret.

A real control plane and one sim executor; a member's task is queued and left there (no second
approval is needed for the counts), and the page must show the executor, the counts and the
audit head, and none of the member's keys, contract or the executor's token.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx

from teeflow.client import Client, MemberHome, MemberKeys
from teeflow.crypto import PrivateKey, SigningKey
from teeflow.server.app import create_app
from teeflow.server.launcher import LocalPlatform
from teeflow.server.settings import Settings

from .conftest import PASSWORD, member_policy


def test_operator_page_is_off_by_default(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data"))

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
            return await http.get("/operator")

    assert asyncio.run(get()).status_code == 404


def test_operator_page_lists_key_releases_and_refusals(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data", operator_page=True))
    store, now = app.state.platform.store, datetime.now(UTC)
    store.append_audit(
        actor="key-service", action="key.release", subject="m" * 64, details={"epoch": 2}, now=now
    )
    store.append_audit(
        actor="key-service",
        action="key.release.refused",
        subject="<b>x</b>",
        details={"reason": "not on the allow-list"},
        now=now,
    )

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://cp") as http:
            return await http.get("/operator")

    text = asyncio.run(get()).text
    releases = text.split("id=key-releases>", 1)[1]
    assert "m" * 64 in releases and "released" in releases and "<td>2</td>" in releases
    assert "refused" in releases and "not on the allow-list" in releases
    assert "&lt;b&gt;x&lt;/b&gt;" in releases and "<b>x</b>" not in releases


def test_operator_page_shows_status_and_nothing_secret(tmp_path) -> None:
    env = {"TEEFLOW_OPERATOR_PAGE": "true"}
    with LocalPlatform(tmp_path / "platform", executors=1, env=env) as platform:
        keys = MemberKeys(SigningKey.generate(), PrivateKey.generate())
        with Client(
            platform.url,
            keys=keys,
            home=MemberHome(tmp_path / "home"),
            policy=member_policy(platform),
        ) as alice:
            alice.register("alice", PASSWORD)
            alice.login("alice", PASSWORD)
            data = alice.upload_dataset(b"id,amount\nSECRETROW,1\n", name="secret-name.csv")
            task = alice.propose(
                "echo", inputs={"data": data["id"]}, outputs={"data": {"recipients": ["alice"]}}
            )
            alice.approve(task["id"])
            alice.run(task["id"])
            alice.wait(task["id"], timeout=120)
            enclave = alice.enclave()
            secret = (platform.data_dir / "executor-secret").read_text().strip()

            page = httpx.get(f"{platform.url}/operator")

    assert page.status_code == 200
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    text = page.text
    assert enclave["measurement"] in text and "SIMULATED" in text
    assert "<th>key epoch</th>" in text and "<td>0</td>" in text  # the sim identity's epoch
    assert "<th>succeeded</th><td>1</td>" in text and "id=queue>0<" in text
    for hidden in (
        "SECRETROW",
        "secret-name",
        secret,
        task["contract_hash"],
        alice.keys.signing_key.verify_key.b64(),
        enclave["public_keys"]["x25519"],
    ):
        assert hidden not in text
